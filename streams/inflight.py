"""Micro-batches in flight: an agent serves the next batch while the last one finishes.

    batch n:    [route] [lock: states -> recommend call -> states written] [produce recs, ack]
    batch n+1:          [route]        (waits for the lock)                [lock: ...      ]

Serving a batch ends with producing its recommendations; with one batch at a time, the
Ray actors wait while the worker encodes and produces, and the worker waits while they
compute. With two in flight, batch n+1's recommend call goes out as soon as batch n's
states are written, and batch n's recommendations are produced meanwhile. Offsets stay
at-least-once: a batch's events are held (`hold`) past Faust's own acknowledgement at
the end of the agent's loop body, and acknowledged only once everything the batch owes
is produced (`release`), so an offset is never committed before its outputs. Batches
finish in the order they started; an error of one is raised into the agent (by the next
`InFlight.add`, or `InFlight.close` when the stream ends).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any


class InFlight:
    """At most ``limit`` tasks at once, awaited in the order they were added."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one batch must be allowed in flight")
        self.limit = limit
        self.tasks: deque[asyncio.Task[None]] = deque()

    async def add(self, work: Coroutine[Any, Any, None]) -> None:
        """Start ``work``; return once fewer than ``limit`` tasks are unfinished (the
        oldest first), raising the error of any that failed."""
        self.tasks.append(asyncio.ensure_future(work))
        while len(self.tasks) >= self.limit:
            await self._finish_oldest()

    async def close(self) -> None:
        """Wait for every task in flight; if this wait is cancelled, so are they."""
        try:
            while self.tasks:
                await self._finish_oldest()
        except BaseException:
            for task in self.tasks:
                task.cancel()
            raise

    async def _finish_oldest(self) -> None:
        oldest = self.tasks[0]
        try:
            await oldest
        finally:
            if oldest.done():
                self.tasks.popleft()


def hold(events: Sequence[Any]) -> None:
    """Keep the offsets of Faust ``events`` uncommitted after their stream acknowledges
    them (one more reference to each message), until `release`."""
    for event in events:
        event.message.incref()


async def release(stream: Any, events: Sequence[Any]) -> None:
    """Drop `hold`'s reference: the events' offsets may now be committed."""
    for event in events:
        await stream.ack(event)
