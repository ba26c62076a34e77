"""`ReadyStream.take_ready`: micro-batches taken as soon as the agent asks, filled while
it serves, acknowledged after its body (a real Faust stream over an in-process channel;
no broker is contacted, acknowledgements are recorded). Through a real broker and
worker it runs in every integration test."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import faust
import pytest

from streams.batching import ReadyStream

WAIT = 10.0  # seconds: a liveness bound for a batch that is due now, never a timing check


class Source:
    """A ReadyStream over a channel, and what it acknowledged."""

    def __init__(self, app: faust.App) -> None:
        self.channel = app.channel()
        stream = app.stream(self.channel)
        assert isinstance(stream, ReadyStream)
        self.stream = stream
        self.acked: list[Any] = []

        async def recording_ack(event: Any) -> bool:
            # Faust's own ack would start the app's consumer (a thread with its own loop)
            self.acked.append(event.value)
            return True

        self.stream.ack = recording_ack  # type: ignore[method-assign]

    async def put(self, *values: int) -> None:
        for value in values:
            await self.channel.send(value=value)

    async def buffered(self) -> None:
        """Return once the stream has taken every value sent so far off its channel."""
        for _ in range(int(WAIT / 0.01)):
            if cast(Any, self.stream.channel).queue.empty():
                break
            await asyncio.sleep(0.01)
        for _ in range(10):  # let the last value's processor finish
            await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect a test's Faust objects at its end: collected later, their finalizers
    could run inside an unrelated `compile()` (CPython 3.11 then raises SystemError)."""
    yield
    gc.collect()


@asynccontextmanager
async def source() -> AsyncIterator[Source]:
    # Never connected: a channel's stream needs no broker, but faust needs a transport.
    app = faust.App(
        "batching-test",
        broker="kafka://localhost:1",
        web_enabled=False,
        Stream=ReadyStream,
        loop=asyncio.get_running_loop(),
    )
    app.flow_control.resume()  # channels block senders until the app resumes them
    s = Source(app)
    await s.stream.maybe_start()
    try:
        yield s
    finally:
        await s.stream.stop()
        # Iterating a stream creates the app's consumer, whose (never started) thread
        # made an event loop of its own: closed here, or it is a ResourceWarning.
        cast(Any, app.consumer)._thread.thread_loop.close()


async def _next(batches: Any) -> list[int]:
    batch = await asyncio.wait_for(batches.__anext__(), WAIT)
    return [event.value for event in batch]


def test_batches_keep_order_and_never_exceed_max() -> None:
    async def run() -> list[list[int]]:
        async with source() as s:
            batches = s.stream.take_ready(2, linger=0.2)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0, 1, 2, 3, 4)
            got = [await first, await _next(batches), await _next(batches)]
            await batches.aclose()
            return got

    assert asyncio.run(run()) == [[0, 1], [2, 3], [4]]


def test_a_lone_event_is_taken_without_waiting_for_more() -> None:
    async def run() -> list[int]:
        async with source() as s:
            batches = s.stream.take_ready(256, linger=0)
            first = asyncio.ensure_future(_next(batches))
            await s.put(7)
            got = await first
            await batches.aclose()
            return got

    assert asyncio.run(run()) == [7]


def test_events_sent_while_the_agent_serves_make_its_next_batch() -> None:
    """Faust's take_events stops filling while the loop body runs; take_ready keeps
    buffering, so everything that came meanwhile is the next batch, at once."""

    async def run() -> tuple[list[int], list[int]]:
        async with source() as s:
            batches = s.stream.take_ready(256, linger=0)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0)
            served = await first
            await s.put(1, 2, 3)  # the agent is still "serving" batch [0]
            await s.buffered()
            following = await _next(batches)
            await batches.aclose()
            return served, following

    assert asyncio.run(run()) == ([0], [1, 2, 3])


def test_linger_gathers_events_that_follow_the_first() -> None:
    async def run() -> list[int]:
        async with source() as s:
            batches = s.stream.take_ready(256, linger=1.0)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0)
            await asyncio.sleep(0.05)
            await s.put(1)
            got = await first
            await batches.aclose()
            return got

    assert asyncio.run(run()) == [0, 1]


def test_a_batch_is_acknowledged_only_after_the_agent_asks_for_the_next() -> None:
    async def run() -> tuple[list[int], list[int]]:
        async with source() as s:
            batches = s.stream.take_ready(2, linger=0.2)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0, 1, 2, 3)
            await first
            while_serving = list(s.acked)
            await _next(batches)  # the loop body of [0, 1] has ended
            after = list(s.acked)
            await batches.aclose()
            return while_serving, after

    assert asyncio.run(run()) == ([], [0, 1])


@pytest.mark.parametrize(("max_", "linger"), [(0, 0.01), (1, -0.1)])
def test_take_ready_refuses_an_empty_batch_or_a_negative_linger(max_: int, linger: float) -> None:
    async def run() -> None:
        async with source() as s:
            s.stream.take_ready(max_, linger)

    with pytest.raises(ValueError, match="take_ready needs"):
        asyncio.run(run())


def test_while_the_next_stage_is_busy_a_batch_grows_until_it_is_idle() -> None:
    """Cut at once, [0] would wait for the busy stage and 1 and 2 for the batch after."""

    async def run() -> list[int]:
        async with source() as s:
            idle = asyncio.Event()  # clear: a batch is being served
            batches = s.stream.take_ready(256, linger=0, idle=idle)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0)
            await s.buffered()
            await s.put(1, 2)
            await s.buffered()
            assert not first.done()
            idle.set()
            got = await first
            await batches.aclose()
            return got

    assert asyncio.run(run()) == [0, 1, 2]


def test_while_the_next_stage_is_busy_a_full_batch_is_taken_at_once() -> None:
    async def run() -> list[int]:
        async with source() as s:
            batches = s.stream.take_ready(2, linger=0, idle=asyncio.Event())  # never idle
            first = asyncio.ensure_future(_next(batches))
            await s.put(0, 1, 2)
            got = await first
            await batches.aclose()
            return got

    assert asyncio.run(run()) == [0, 1]


def test_a_batch_grows_only_while_it_is_small() -> None:
    """With the next stage busy, a batch that reaches ``grow_below`` is cut without
    waiting for that stage (under a backlog, batches stay as large as before)."""

    async def run() -> list[int]:
        async with source() as s:
            batches = s.stream.take_ready(256, linger=0, idle=asyncio.Event(), grow_below=2)
            first = asyncio.ensure_future(_next(batches))
            await s.put(0)
            await s.buffered()
            assert not first.done()  # small, and the stage is busy: it grows
            await s.put(1, 2)
            got = await asyncio.wait_for(first, timeout=10)  # not waiting for the stage
            await batches.aclose()
            return got

    assert asyncio.run(run())[:2] == [0, 1]


def test_grow_below_must_leave_a_batch_room() -> None:
    async def run() -> None:
        async with source() as s:
            await _next(s.stream.take_ready(8, linger=0, idle=asyncio.Event(), grow_below=0))

    with pytest.raises(ValueError, match="grow_below"):
        asyncio.run(run())
