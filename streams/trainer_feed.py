"""Training samples handed to the trainer actor in the background.

A batch used to await the trainer actor's ``add`` while it held the serving lock. The
trainer's process is busy with rounds (its training thread holds the GIL between torch
ops), so that call took 5.6 ms on average at 1,000 events/s, and every batch behind it
waited (BENCHMARKS.md, session 21). The feed starts the hand-over and returns; at most
``limit`` hand-overs are under way, and a batch waits for one only past that (so a
stalled trainer cannot grow the worker's memory). A forget waits for every hand-over
started before it (`TrainerFeed.drain`), so the trainer holds the samples it must drop.

Samples are derived data, not records: if the trainer cannot take them, the
recommendations already went out and the loss is a slower-learning model, so it is
logged rather than dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streams import metrics
from streams.remote import describe
from workers.training import Sample

log = logging.getLogger(__name__)


class TrainerFeed:
    """Hands samples to one trainer actor, ``limit`` hand-overs at most under way."""

    def __init__(self, trainer: Any, limit: int = 2) -> None:
        if limit < 1:
            raise ValueError("at least one hand-over must be allowed under way")
        self.trainer = trainer
        self.limit = limit
        self.pending: set[asyncio.Task[None]] = set()

    async def add(self, samples: list[Sample]) -> None:
        """Start handing ``samples`` over; wait only while ``limit`` are under way."""
        while len(self.pending) >= self.limit:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(self._hand_over(samples))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        """Wait until every hand-over started so far has ended."""
        if self.pending:
            await asyncio.wait(set(self.pending))

    async def _hand_over(self, samples: list[Sample]) -> None:
        started = time.monotonic()
        try:
            await self.trainer.add.remote(samples)
            metrics.RAY_CALL.labels(call="trainer add").observe(time.monotonic() - started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("trainer did not take %d samples: %s", len(samples), describe(exc))
