"""Samples reach the trainer in the background: a batch does not wait for the trainer's
``add``; past ``limit`` hand-overs under way its samples go with the next one, and it
waits only when too many wait; a forget waits for the samples given before it, and a
trainer that fails to take samples is logged, not raised."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.forget import forget_users
from streams.schemas import ForgetUser, KeyedForget, SourceRef
from streams.trainer_feed import TrainerFeed
from tests.unit.agents.helpers import FAST, fake_topics
from workers.actors import Actors


class _Method:
    def __init__(self, run: Any) -> None:
        self.run = run

    def remote(self, *args: Any) -> Any:
        return self.run(*args)


class SlowTrainer:
    """Takes samples when ``gate`` opens (one gate for every call); logs what it did."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.gate = asyncio.Event()
        self.log: list[str] = []
        self.fail = fail
        self.add = _Method(self._add)
        self.forget = _Method(self._forget)

    async def _add(self, samples: list[str]) -> int:
        self.log.append(f"add started {samples}")
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.log.append(f"added {samples}")
        return len(samples)

    async def _forget(self, user_ids: list[str]) -> int:
        self.log.append(f"forget {user_ids}")
        return 0


def test_samples_past_the_limit_go_together_in_the_next_hand_over() -> None:
    async def run() -> None:
        trainer = SlowTrainer()
        feed = TrainerFeed(trainer, limit=2)
        for batch in (["s1"], ["s2"], ["s3"], ["s4", "s5"]):
            await asyncio.wait_for(feed.add(batch), 5)  # type: ignore[arg-type]  # none waits
        assert len(feed.pending) == 2 and [str(s) for s in feed.waiting] == ["s3", "s4", "s5"]
        assert not any(line.startswith("added") for line in trainer.log)
        trainer.gate.set()
        await feed.drain()
        assert not feed.pending and not feed.waiting
        assert [line for line in trainer.log if line.startswith("added")] == [
            "added ['s1']",
            "added ['s2']",
            "added ['s3', 's4', 's5']",  # one call for the three batches that waited
        ]

    asyncio.run(run())


def test_a_batch_waits_only_when_too_many_samples_wait() -> None:
    async def run() -> None:
        trainer = SlowTrainer()
        feed = TrainerFeed(trainer, limit=1, waiting_max=2)
        await feed.add(["s1"])  # type: ignore[list-item]
        await feed.add(["s2", "s3"])  # type: ignore[list-item]  # 2 waiting: at the bound
        third = asyncio.ensure_future(feed.add(["s4"]))  # type: ignore[list-item]
        await asyncio.sleep(0.01)
        assert not third.done()  # 3 would wait: the batch waits for the trainer
        trainer.gate.set()
        await third
        await feed.drain()
        assert [line for line in trainer.log if line.startswith("added")] == [
            "added ['s1']",
            "added ['s2', 's3', 's4']",
        ]

    asyncio.run(run())


def test_a_forget_waits_for_the_samples_handed_over_before_it() -> None:
    async def run() -> list[str]:
        trainer = SlowTrainer()
        feed = TrainerFeed(trainer)
        await feed.add(["u1 sample"])  # type: ignore[list-item]
        forget = KeyedForget(
            forget=ForgetUser(type="forget", user_id="u1"),
            source=SourceRef(topic="events", partition=0, offset=1, key="u1", timestamp=1.0),
        )
        actors = Actors(encoder=None, catalog=None, recommender=None, trainer=trainer)
        forgetting = asyncio.ensure_future(
            forget_users(
                [forget], topics=fake_topics(), users={}, actors=actors, retry=FAST, feed=feed
            )
        )
        await asyncio.sleep(0.01)
        assert not forgetting.done()
        trainer.gate.set()
        await forgetting
        return trainer.log

    log = asyncio.run(run())
    assert log.index("added ['u1 sample']") < log.index("forget ['u1']")


def test_a_trainer_that_fails_to_take_samples_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        trainer = SlowTrainer(fail=ConnectionError("trainer restarting"))
        trainer.gate.set()
        feed = TrainerFeed(trainer)
        await feed.add(["s1"])  # type: ignore[list-item]
        await feed.drain()

    asyncio.run(run())
    assert "trainer did not take 1 samples: ConnectionError: trainer restarting" in caplog.text


def test_no_hand_over_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        TrainerFeed(SlowTrainer(), limit=0)
