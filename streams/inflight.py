"""Micro-batches in flight: an agent serves the next batch while the last one finishes.

    batch n:    [route] [lock: states -> recommend call -> states written] [produce recs, ack]
    batch n+1:   (grows)       [route] (waits for the lock)                [lock: ...      ]

Serving a batch ends with producing its recommendations; with one batch at a time, the
Ray actors wait while the worker encodes and produces, and the worker waits while they
compute. With two in flight, batch n+1's recommend call goes out as soon as batch n's
states are written, and batch n's recommendations are produced meanwhile. While a batch
is queued for the lock or holds it (`Serving`), a small next one keeps growing and is
cut when the lock is free or it is no longer small: cut at once, it would only wait for
the lock with the few events that had come by then, and those that come while it waits
would wait for the batch after it (at 1,000 events/s p99 was lower in 7 of 8 pairs
measured, p50 in 6: BENCHMARKS.md session 38). A large one is cut as before: growing
every batch to full cost the firehose 9 %. Offsets stay at-least-once: a batch's
events are held (`hold`) past Faust's own acknowledgement at the end of the agent's loop
body, and acknowledged only once everything the batch owes is produced (`release`), so
an offset is never committed before its outputs. Batches finish in the order they
started; an error of one is raised into the agent (by the next
`InFlight.add`, or `InFlight.close` when the stream ends).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any


class InFlight:
    """At most ``limit`` tasks at once, awaited in the order they were added."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one batch must be allowed in flight")
        self.limit = limit
        self.tasks: deque[asyncio.Task[None]] = deque()

    async def add(
        self, work: Coroutine[Any, Any, None], *, done: Callable[[], None] | None = None
    ) -> None:
        """Start ``work``; return once fewer than ``limit`` tasks are unfinished (the
        oldest first), raising the error of any that failed. ``done`` is called when the
        work ends, however it ends (cancelled before it started included)."""
        task = asyncio.ensure_future(work)
        if done is not None:
            task.add_done_callback(lambda _: done())
        self.tasks.append(task)
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


class Serving:
    """The serving lock: one batch at a time reads and writes the users table, in the
    order the batches were queued (`Serving.queue`). ``idle`` is set while no batch is
    queued for it or holds it; until then an agent lets a small next batch grow
    (`streams.batching.ReadyStream.take_ready`), since that batch could not be served
    sooner anyway, and every event it takes in is one the batch after it need not."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._queued = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def queue(self) -> Turn:
        """A batch's turn, counted from now (its cut) to the end of its serving."""
        self._queued += 1
        self.idle.clear()
        return Turn(self)

    def _left(self) -> None:
        self._queued -= 1
        if not self._queued:
            self.idle.set()


class Turn:
    """One batch's turn for the serving lock: ``async with turn`` holds the lock; the
    turn ends when that block is left, or at `leave` (for a batch that never served:
    call it when its task is done, whatever happened)."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving
        self._open = True

    async def __aenter__(self) -> None:
        await self._serving._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._serving._lock.release()
        self.leave()

    def leave(self) -> None:
        """End the turn (once; later calls do nothing)."""
        if self._open:
            self._open = False
            self._serving._left()
