"""A real deployment for the integration tests: Tansu broker, a `streamrec worker`
process (Faust + local Ray + the real language model + the Qdrant engine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tooling.local import LocalStack, local_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(partitions=2) as running:
        running.start_worker()
        yield running
