"""A failure of the cluster under the stream is waited out: the catalog replica (the copy
of the serving vectors every event's search reads) killed mid-stream is restarted by Ray,
copies the catalog again, and every event is still served, none dead-lettered."""

from __future__ import annotations

import time

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    event,
    fault_report,
    item,
    latest_states,
    read,
    recommendations_for,
    send_events,
    send_items,
    unique,
    wait_served,
)
from tooling.local import LocalStack
from tooling.processes import ray_address_of
from workers.actors import REPLICA_NAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_killed_catalog_replica_restarts_and_no_event_is_lost(
    zero_shot_stack: LocalStack,
) -> None:
    import ray

    stack = zero_shot_stack
    stack.env["STREAMREC_RECOMMEND__REPLICA"] = "node"  # the node's shared replica actor
    stack.start_worker()
    scenario = unique("actor")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    events = [
        event(
            unique("e"), f"{scenario}-u{n % 20}", catalog[n % len(catalog)]["item_id"], n, scenario
        )
        for n in range(2000)
    ]
    ids = {e["event_id"] for e in events}
    before, after = events[:1000], events[1000:]
    send_events(stack, before)
    wait_served(stack, {e["event_id"] for e in before}, at_least=200)

    address = ray_address_of(stack.workers[0].pid)  # the worker's local Ray
    assert address is not None, "the worker started no Ray"
    ray.init(address=address, namespace="streamrec", log_to_driver=False)
    try:
        (name,) = [n for n in ray.util.list_named_actors() if n.startswith(REPLICA_NAME)]
        ray.kill(ray.get_actor(name), no_restart=False)
    finally:
        ray.shutdown()
    killed = time.monotonic()
    # Sent after the kill, so the stream meets the restarting replica: with the first
    # half alone, a fast worker had served all of it before the kill landed.
    send_events(stack, after)

    recs = recommendations_for(stack, ids, timeout=300)
    recovered = time.monotonic() - killed
    lost = ids - set(recs)
    assert not lost, f"lost {len(lost)} events; worker:\n{stack.log_tail(0, 60)}"
    letters = read(stack, stack.kafka.topics.dead_letters, lambda _: False, timeout=2)
    assert not letters, [d.value for d in letters][:3]
    log = (stack.workdir / "worker-0.log").read_text()
    assert "retrying in" in log, "the kill never reached the stream: nothing was tested"
    states = latest_states(stack)
    print(fault_report("catalog replica killed", events, recs, letters, states, recovered))
