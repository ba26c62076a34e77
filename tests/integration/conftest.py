"""A real deployment for the integration tests: Tansu broker, a `streamrec worker`
process (Faust + local Ray + the real language model + the Qdrant engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tooling.local import LocalStack, local_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(partitions=2) as running:
        running.start_worker()
        yield running


@pytest.fixture
def zero_shot_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A broker and no worker yet, training off (fault tests feed synthetic streams, which
    online learning would legitimately learn from); logs stay under tmp_path."""
    env = {"STREAMREC_TRAINING__MODE": "zero-shot"}
    with local_stack(partitions=2, env=env, workdir=tmp_path / "stack") as running:
        yield running
