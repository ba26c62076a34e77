"""The bench's probes against a running worker: a new item's twin becomes recommendable
(and the probe says when), and the memory probe finds the worker's actor processes."""

from __future__ import annotations

import pytest

from tests.integration import themes
from tests.integration.helpers import item, send_items, unique
from tooling.bench_probes import memory, new_item_freshness
from tooling.local import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_freshness_and_memory_probes(zero_shot_stack: LocalStack) -> None:
    stack = zero_shot_stack
    worker = stack.start_worker()
    scenario = unique("probe")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    took = new_item_freshness(stack, catalog[3], timeout=60)
    assert 0 < took < 60
    used = memory(worker.pid)
    assert used["worker"] > 50  # a Faust worker with torch and Ray loaded
    assert {"Recommender", "Catalog", "TextEncoder"} <= set(used["actors"])
    assert all(mb > 10 for mb in used["actors"].values())
