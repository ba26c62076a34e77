"""Training samples handed to the trainer actor in the background.

A batch used to await the trainer actor's ``add`` while it held the serving lock. The
trainer's process is busy with rounds (its training thread holds the GIL between torch
ops), so that call took 5.6 ms on average at 1,000 events/s, and every batch behind it
waited (BENCHMARKS.md, session 21). The feed starts the hand-over and returns; at most
``limit`` hand-overs are under way, the samples of later batches wait for the next one
(a bounded number: a stalled trainer cannot grow the worker's memory). A forget waits
until every sample given before it is handed over (`TrainerFeed.drain`), so the trainer
holds the samples it must drop.

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
    """Hands samples to one trainer actor, ``limit`` hand-overs at most under way.

    Past the limit, a batch's samples join those waiting for the next hand-over, which
    takes all of them in one call when one under way ends: the number of calls follows
    the trainer's pace, not the batch rate (natural batching, as `streams.batching`). A
    batch waits only while more than ``waiting_max`` samples wait (a stalled trainer)."""

    def __init__(self, trainer: Any, limit: int = 2, waiting_max: int = 20_000) -> None:
        if limit < 1 or waiting_max < 0:
            raise ValueError(f"a feed needs limit >= 1 and waiting_max >= 0: {limit} {waiting_max}")
        self.trainer = trainer
        self.limit = limit
        self.waiting_max = waiting_max
        self.pending: set[asyncio.Task[None]] = set()
        self.waiting: list[Sample] = []

    async def add(self, samples: list[Sample]) -> None:
        """Start handing ``samples`` over, or leave them for the next hand-over; wait
        only while more than ``waiting_max`` samples are left."""
        if len(self.pending) < self.limit:
            self._start(self.waiting + samples)  # (none wait unless one was cancelled)
            self.waiting = []
            return
        self.waiting.extend(samples)
        while len(self.waiting) > self.waiting_max and self.pending:
            await asyncio.wait(set(self.pending), return_when=asyncio.FIRST_COMPLETED)

    async def drain(self) -> None:
        """Wait until every sample given so far is handed over (or failed to be)."""
        while self.pending:  # samples left waiting start as one under way ends
            await asyncio.wait(set(self.pending))

    def _start(self, samples: list[Sample]) -> None:
        task = asyncio.ensure_future(self._hand_over(samples))
        self.pending.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Runs before any waiter of this task (registered first), so `add` and `drain`
        # see the next hand-over already started.
        self.pending.discard(task)
        if self.waiting and not task.cancelled():  # cancelled: the worker is stopping
            samples, self.waiting = self.waiting, []
            self._start(samples)

    async def _hand_over(self, samples: list[Sample]) -> None:
        started = time.monotonic()
        try:
            await self.trainer.add.remote(samples)
            metrics.RAY_CALL.labels(call="trainer add").observe(time.monotonic() - started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("trainer did not take %d samples: %s", len(samples), describe(exc))
