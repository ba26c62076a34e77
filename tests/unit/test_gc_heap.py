"""What a process built at start is frozen out of garbage collection, in actors only."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import workers.actors
from workers.actors import _freezing
from workers.gc_heap import freeze_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap goes back to being collected


def test_freezing_moves_every_live_object_out_of_collection(unfrozen: None) -> None:
    kept = [[n] for n in range(1000)]  # containers the collector tracks
    assert gc.get_freeze_count() == 0
    frozen = freeze_heap("test")
    assert frozen == gc.get_freeze_count() >= len(kept)


class Plain:
    """A plain worker class."""

    def __init__(self, value: int, *, scale: int = 1) -> None:
        self.value = value * scale


def test_an_actor_class_freezes_once_an_instance_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    owners: list[str] = []
    monkeypatch.setattr(workers.actors, "freeze_heap", owners.append)
    actor = _freezing(Plain)
    assert (actor.__name__, actor.__qualname__, actor.__doc__) == ("Plain", "Plain", Plain.__doc__)
    built = actor(3, scale=2)
    assert isinstance(built, Plain) and built.value == 6
    assert owners == ["Plain"]
    Plain(4)  # the plain class, as tests use it in-process, freezes nothing
    assert owners == ["Plain"]
