"""The fetcher's eager hand-off (`streams.handoff`): a hand-off that waits for nothing
finishes in place, with no task and no event loop; one that waits goes on where it
stopped, with results, errors and cancellation passed through; the record step keeps
Faust's rules (records behind the read offset dropped, gaps filed, a waiting hand-off
abandoned when the flow is suspended, the record then marked read).

The consumer here is built without a transport (offsets, a callback and mode's
``wait_first``); every integration test runs the real one against a broker."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]
from mode.utils.locks import Event

from streams import metrics
from streams.handoff import Dropped, EagerHandoffConsumer, report_dropped, start_eagerly

A = TP("events", 0)


def test_a_handoff_that_waits_for_nothing_finishes_without_a_loop() -> None:
    done: list[int] = []

    async def deliver() -> None:
        done.append(1)

    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # none: no task could have been made
    assert start_eagerly(deliver()) is None
    assert done == [1]


def test_an_error_in_the_first_step_propagates() -> None:
    async def deliver() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        start_eagerly(deliver())


def test_a_handoff_that_waits_goes_on_with_what_it_waited_for() -> None:
    async def run() -> list[Any]:
        seen: list[Any] = []
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def deliver() -> None:
            seen.append("before")
            seen.append(await gate)
            await asyncio.sleep(0)  # a second wait, on nothing
            seen.append("after")

        rest = start_eagerly(deliver())
        assert rest is not None
        assert seen == ["before"]  # the first step ran in place
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        gate.set_result("room in the queue")
        await task
        return seen

    assert asyncio.run(run()) == ["before", "room in the queue", "after"]


async def held_at_a_gate() -> tuple[asyncio.Future[None], asyncio.Future[None], list[str]]:
    """A hand-off started eagerly that waits on a gate (a future), its rest running as a
    task: (the gate, the task, what the hand-off saw thrown into it)."""
    seen: list[str] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def deliver() -> None:
        try:
            await gate
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    rest = start_eagerly(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    return gate, task, seen


def test_an_error_on_what_it_waited_for_reaches_the_handoff() -> None:
    async def run() -> list[str]:
        gate, task, seen = await held_at_a_gate()
        gate.set_exception(KeyError("gone"))
        with pytest.raises(KeyError):
            await task
        return seen

    assert asyncio.run(run()) == ["KeyError"]


def test_cancelling_the_rest_cancels_the_handoff() -> None:
    async def run() -> list[str]:
        gate, task, seen = await held_at_a_gate()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.cancelled()  # the task cancelled the future the hand-off awaited
        return seen

    assert asyncio.run(run()) == ["CancelledError"]


def test_an_awaitable_that_is_not_a_coroutine_is_left_as_it_is() -> None:
    async def run() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert start_eagerly(future) is future

    asyncio.run(run())


def consumer(callback: Callable[[Any], Awaitable[None]]) -> EagerHandoffConsumer:
    """Offsets, a callback, acks on for every topic, and what mode's ``wait_first`` reads."""
    c = EagerHandoffConsumer.__new__(EagerHandoffConsumer)  # no transport
    c._read_offset = defaultdict(lambda: None)
    c._gap = defaultdict(IntervalTree)
    c._committed_offset = defaultdict(lambda: None)
    c._commit_every = None
    c.callback = callback
    c.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))  # type: ignore[assignment]
    c._stopped, c._crashed = Event(), Event()
    c.suspend_flow = asyncio.Event()
    c._loop = None  # mode's Service finds the running loop
    return c


def record(offset: int) -> Any:
    return SimpleNamespace(offset=offset, topic=A.topic)


def test_the_record_step_keeps_fausts_offset_rules() -> None:
    handed: list[int] = []

    async def deliver(message: Any) -> None:
        handed.append(message.offset)

    c = consumer(deliver)

    async def run() -> list[bool]:
        return [await c._hand_off(A, record(offset)) for offset in (5, 6, 9, 7, 10)]

    assert asyncio.run(run()) == [True, True, True, False, True]
    assert handed == [5, 6, 9, 10]  # 7 is behind the read offset: fetched again, dropped
    assert c._read_offset[A] == 10
    # Faust's `_add_gap` files read + 1 up to and with the new offset: [7, 10)
    assert sorted((i.begin, i.end) for i in c._gap[A]) == [(7, 10)]


def test_a_waiting_handoff_is_abandoned_when_the_flow_is_suspended() -> None:
    """Faust's behaviour for a hand-off held up by a rebalance: given up, the record
    marked read (the seek after the rebalance fetches it again)."""
    seen: list[str] = []

    async def run() -> None:
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def deliver(message: Any) -> None:
            try:
                await held
                seen.append("delivered")
            except asyncio.CancelledError:
                seen.append("abandoned")
                raise

        c = consumer(deliver)
        step = asyncio.ensure_future(c._hand_off(A, record(3)))
        await asyncio.sleep(0.01)
        assert not step.done()  # waiting for room, not marked read
        assert c._read_offset[A] is None
        c.suspend_flow.set()
        await step
        assert c._read_offset[A] == 3

    asyncio.run(run())
    assert seen == ["abandoned"]


def test_a_waiting_handoff_that_gets_through_is_delivered() -> None:
    seen: list[int] = []

    async def run() -> None:
        room = asyncio.Event()

        async def deliver(message: Any) -> None:
            await room.wait()
            seen.append(message.offset)

        c = consumer(deliver)
        step = asyncio.ensure_future(c._hand_off(A, record(4)))
        await asyncio.sleep(0.01)
        room.set()
        await step
        assert c._read_offset[A] == 4

    asyncio.run(run())
    assert seen == [4]


def dropped(topic: str) -> float:
    return float(metrics.RECORDS_DROPPED.labels(topic=topic)._value.get())


def test_records_dropped_behind_the_read_offset_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = TP("by-user", 1)
    drops, other_drops = Dropped(read=40), Dropped(read=8)
    for offset in (30, 31, 39):
        drops.add(offset)
    other_drops.add(2)
    before, before_other = dropped(A.topic), dropped(other.topic)
    with caplog.at_level(logging.INFO, logger="streams.handoff"):
        report_dropped({A: drops, other: other_drops})
    assert dropped(A.topic) - before == 3
    assert dropped(other.topic) - before_other == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "dropped 3 records of" in line and "offsets 30-39" in line and "read offset 40" in line
        for line in lines
    )
    assert len(lines) == 2  # one line per partition, not one per record


def test_the_fetch_loop_reports_what_one_fetch_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Records fetched again behind the read offset (a seek back) reach the count through
    the fetch loop, per partition, and the rest go on to the streams."""
    handed: list[int] = []

    async def deliver(message: Any) -> None:
        handed.append(message.offset)

    c = consumer(deliver)
    c._read_offset[A] = 4
    fetcher = SimpleNamespace(_stopped=Event())
    c.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)  # type: ignore[assignment]

    async def one_fetch(timeout: float) -> Any:
        for offset in (2, 3, 4, 5, 6):
            yield A, record(offset)
        fetcher._stopped.set()  # one fetch, then the loop ends

    c.getmany = one_fetch  # type: ignore[method-assign]
    before = dropped(A.topic)
    with caplog.at_level(logging.INFO, logger="streams.handoff"):
        asyncio.run(c._drain_messages(fetcher))
    assert handed == [4, 5, 6]  # Faust hands the read offset's own record again
    assert dropped(A.topic) - before == 2  # 2 and 3: behind the read offset 4
    # the read offset they were dropped against, not the one at the end of the fetch (6)
    assert any(
        "offsets 2-3" in r.getMessage() and "read offset 4" in r.getMessage()
        for r in caplog.records
    )
