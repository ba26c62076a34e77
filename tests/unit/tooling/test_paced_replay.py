"""The eval's replay paced to the trainer: no event is produced while a training round is
due (N samples since the last logged round), and a round that never comes is waited for
only ``stall`` seconds, three times at most. The broker, worker and trainer are stood in
for by a fake that logs a round over everything it has received whenever one is due."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from streams.schemas import decode_event
from tooling import replay
from tooling.datasets import Record
from tooling.replay import RunPlan, Served

EVERY = 50


class FakeTrainer:
    """Receives every produced event's sample at once (an event of a user seen before)
    and, when ``trains``, logs a round the moment one is due."""

    def __init__(self, trains: bool = True) -> None:
        self.trains = trains
        self.users: set[str] = set()
        self.samples = 0
        self.rounds: list[dict[str, Any]] = []
        self.due_when_produced: list[int] = []  # pending samples at each produce call

    def produce(self, producer: Any, topic: str, records: Sequence[Record], key: str) -> int:
        self.due_when_produced.append(self.samples - self.seen())
        for r in records:
            self.samples += str(r["user_id"]) in self.users
            self.users.add(str(r["user_id"]))
        return len(records)

    def seen(self) -> int:
        return int(self.rounds[-1]["samples_seen"]) if self.rounds else 0

    def read_rounds(self, root: Path, *, empty: bool = False) -> list[dict[str, Any]]:
        if self.trains and self.samples - self.seen() >= EVERY:
            self.rounds.append({"samples_seen": self.samples})
        return list(self.rounds)


class ServesAll:
    """A collector whose every expected event is served on the next poll."""

    def __init__(self) -> None:
        self.missing: set[str] = set()
        self.served: dict[str, Served] = {}

    def expect(self, events: Sequence[Record]) -> None:
        self.missing.update(str(e["event_id"]) for e in events)

    def poll(self, seconds: float) -> None:
        for event_id in self.missing:
            self.served[event_id] = Served((), 0, 0.0)
        self.missing.clear()

    def wait(self, deadline: float, name: str, shown: Callable[[], None]) -> None:
        self.poll(0.0)
        shown()


def events(n: int, users: int) -> list[Record]:
    return [{"event_id": str(i), "user_id": str(i % users), "item_id": "1"} for i in range(n)]


def paced(fake: FakeTrainer, stream: list[Record], tmp_path: Path, stall: float) -> int:
    plan = RunPlan("t", "s", [], stream, [], tmp_path, {}, pace_every=EVERY, stall=stall)
    collector = ServesAll()
    stalls = replay._paced(None, "events", stream, collector, plan, Console(quiet=True))  # type: ignore[arg-type]
    assert set(collector.served) == {str(e["event_id"]) for e in stream}
    return stalls


def test_no_event_is_produced_while_a_round_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTrainer()
    monkeypatch.setattr(replay, "produce", fake.produce)
    monkeypatch.setattr(replay, "read_rounds", fake.read_rounds)
    stream = events(1000, users=7)
    assert paced(fake, stream, tmp_path, stall=5.0) == 0
    assert max(fake.due_when_produced) < EVERY
    # every round saw at most N new samples plus one chunk's (N // 10 events)
    seen = [0] + [r["samples_seen"] for r in fake.rounds]
    assert all(0 < b - a <= EVERY + EVERY // 10 for a, b in itertools.pairwise(seen))
    assert len(fake.rounds) == (1000 - 7) // EVERY


def test_a_round_that_never_comes_is_waited_for_three_times_then_the_stream_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTrainer(trains=False)
    monkeypatch.setattr(replay, "produce", fake.produce)
    monkeypatch.setattr(replay, "read_rounds", fake.read_rounds)
    assert paced(fake, events(400, users=4), tmp_path, stall=0.05) == 3
    assert fake.samples == 396  # the whole stream was produced all the same


def test_probes_go_out_marked_not_to_learn() -> None:
    """Phase 2's probes must not train the model whose lists they measure."""
    wire = replay.Wire("beauty")
    probe = {"event_id": "e1", "user_id": "u", "item_id": "i", "ts": 1.0}
    out = replay.probe_records(wire, [probe])
    assert out == [
        {"event_id": "e1", "user_id": "beauty:u", "item_id": "beauty:i", "ts": 1.0, "learn": False}
    ]
    assert decode_event(json.dumps(out[0]).encode(), default_event_id="d").learn is False
