"""The backends the contract suite runs against: the `store` fixture opens one store of
each kind, `persistent_opener` reopens stores of each kind that keeps its data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.store.helpers import Opener
from workers.store import VectorStore

KINDS = ("edge", "local-memory", "local-path")
PERSISTENT_KINDS = ("edge", "local-path")


def _url(kind: str, tmp_path: Path) -> str:
    return {
        "edge": f"edge://{tmp_path / 'edge'}",
        "local-memory": "local::memory:",
        "local-path": f"local:{tmp_path / 'local'}",
    }[kind]


@pytest.fixture(params=KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    made = Opener(request.param, _url(request.param, tmp_path))
    yield made
    made.close_all()


@pytest.fixture(params=PERSISTENT_KINDS)
def persistent_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    made = Opener(request.param, _url(request.param, tmp_path))
    yield made
    made.close_all()


@pytest.fixture
def store(opener: Opener) -> VectorStore:
    return opener()
