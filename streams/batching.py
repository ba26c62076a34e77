"""Micro-batches taken as soon as the agent is ready for one (natural batching).

Faust's ``Stream.take_events(max_, within)`` waits ``within`` after every batch, even
when events are already queued, stops filling its buffer while the agent works on a
batch, and wakes every ``within`` when idle. `ReadyStream.take_ready` instead (the
latency gain at 400 events/s was within the machine's noise, BENCHMARKS.md session 22;
it is kept for what it does by construction):

    events arrive ──buffer (filled all the time, also while the agent serves)──┐
    agent ready ── some event buffered? ── yes: wait up to ``linger`` for more ─┴─> batch
                                        └─ no: sleep until the first one comes

so a batch's size follows the load: one event when the stack is idle, everything that
came meanwhile when the agent was busy (up to ``max_``; a full buffer holds the stream
back until the batch is taken). An idle stream has no timer to wake up for. Given an
``idle`` event (the agents pass `streams.inflight.Serving`'s), a small batch (under
``grow_below`` events) waits while the stage it goes to is busy, instead of the linger,
until that stage is free or it has ``grow_below``: cut at once, it would only wait for
that stage, and the events that come meanwhile would wait for the batch after it.

Acknowledgement is Faust's: a batch's events are acknowledged after the agent's loop
body, the same as ``take_events`` (`streams.inflight.hold` keeps offsets past that).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import faust
from faust.types import ChannelT
from mode.utils.aiter import aiter
from mode.utils.locks import Event


class ReadyStream(faust.Stream[Any]):
    """faust.Stream with `take_ready`: the app's streams (``faust.App(Stream=...)``)."""

    def take_ready(
        self,
        max_: int,
        linger: float,
        idle: asyncio.Event | None = None,
        grow_below: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """Lists of at most ``max_`` events (Faust ``EventT``), each taken once the agent
        asks and some event is buffered, ``linger`` seconds (0: none) after that for more
        unless ``max_`` came first. Given ``idle``, a batch of fewer than ``grow_below``
        events (None: ``max_``) is instead left to grow while ``idle`` is clear (the
        stage it goes to is busy), until it is set or the batch has ``grow_below``."""
        if max_ < 1 or linger < 0:
            raise ValueError(f"take_ready needs max_ >= 1 and linger >= 0, got {max_}, {linger}")
        below = max_ if grow_below is None else min(max_, grow_below)
        if below < 1:
            raise ValueError(f"take_ready needs grow_below >= 1, got {grow_below}")
        batches = self._ready_batches(max_, linger, idle, below)
        self._active_agens.add(batches)  # closed by the stream's stop, as Faust's take()
        return batches

    async def _ready_batches(
        self, max_: int, linger: float, idle: asyncio.Event | None, grow_below: int
    ) -> AsyncGenerator[list[Any], None]:
        buffered: list[Any] = []
        arrived, full, taken, grown = Event(), Event(), Event(), Event()

        async def add_to_buffer(value: Any) -> Any:
            event = self.current_event
            if event is None:
                raise RuntimeError("a buffered stream value has no current event")
            buffered.append(event)
            arrived.set()
            if len(buffered) >= grow_below:
                grown.set()
            if len(buffered) >= max_:  # hold the stream back until this batch is taken
                full.set()
                taken.clear()
                await self.wait(taken)
            return value

        acks = self.enable_acks
        self.enable_acks = False  # acknowledged here, after the agent's body
        self.add_processor(add_to_buffer)
        self._enable_passive(cast(ChannelT[Any], aiter(self.channel)))  # as Faust's take()
        try:
            while not self.should_stop:
                await self.wait_for_stopped(arrived)
                grows = idle is not None and not idle.is_set() and not grown.is_set()
                if grows and idle is not None:  # its stage is busy: it could not be served sooner
                    await self.wait_first(grown, idle.wait())  # returns as well when stopping
                if linger and not grows and not full.is_set():
                    await self.wait_for_stopped(full, timeout=linger)
                if not buffered:
                    continue  # stopped while waiting
                batch = buffered[:]  # at most max_: a full buffer holds the stream
                buffered.clear()
                arrived.clear()
                full.clear()
                grown.clear()
                taken.set()
                try:
                    yield batch
                finally:
                    for event in batch:
                        await self.ack(event)
        finally:
            self.enable_acks = acks
            self._processors.remove(add_to_buffer)
