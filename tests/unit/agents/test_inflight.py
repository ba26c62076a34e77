"""Batches in flight: how many at once, in which order they are awaited, what an error
does, and that a held event's offset is released only after its batch is served."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import RecordTooLargeError

from streams import metrics
from streams.agents import serve_held
from streams.delivery import Outbox, Receipts
from streams.inflight import InFlight, hold, release
from tests.unit.agents.helpers import FAST, NoChangelog, fake_topics


async def _step(log: list[str], name: str, gate: asyncio.Event | None = None) -> None:
    log.append(f"{name} start")
    if gate is not None:
        await gate.wait()
    await asyncio.sleep(0)
    log.append(f"{name} end")


def test_add_returns_once_fewer_than_the_limit_are_unfinished() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        flight = InFlight(2)
        first_gate = asyncio.Event()
        await flight.add(_step(log, "a", first_gate))  # 1 in flight: returns at once
        assert len(flight.tasks) == 1
        adding = asyncio.ensure_future(flight.add(_step(log, "b")))
        await asyncio.sleep(0.01)
        assert not adding.done()  # 2 in flight: waits for "a"
        assert "b end" in log  # the second batch runs meanwhile (the lock orders its writes)
        first_gate.set()
        await adding
        assert "a end" in log and len(flight.tasks) == 1  # "b", awaited by the next add
        await flight.close()
        return log

    assert asyncio.run(run())[0] == "a start"


def test_one_in_flight_serves_each_batch_before_the_next_starts() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        flight = InFlight(1)
        for name in "abc":
            await flight.add(_step(log, name))
            assert not flight.tasks
        return log

    assert asyncio.run(run()) == [f"{n} {w}" for n in "abc" for w in ("start", "end")]


def test_an_error_of_a_batch_reaches_the_agent_and_the_rest_still_finish() -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("broker down")

    async def run() -> list[str]:
        log: list[str] = []
        flight = InFlight(2)
        await flight.add(fail())
        with pytest.raises(RuntimeError, match="broker down"):
            await flight.add(_step(log, "b"))
        await flight.close()  # "b" is still in flight: close waits for it
        return log

    assert asyncio.run(run()) == ["b start", "b end"]


def test_closing_cancelled_cancels_what_is_in_flight() -> None:
    async def run() -> asyncio.Task[None]:
        flight = InFlight(3)
        await flight.add(asyncio.sleep(60))
        held = flight.tasks[0]
        closing = asyncio.ensure_future(flight.close())
        await asyncio.sleep(0.01)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        await asyncio.sleep(0)
        return held

    assert asyncio.run(run()).cancelled()


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        InFlight(0)


def test_done_is_called_however_the_work_ends() -> None:
    """A batch's turn must end even if its task never ran (cancelled while stopping),
    or every later batch would wait to grow full."""

    async def run() -> list[str]:
        ended: list[str] = []
        flight = InFlight(3)
        await flight.add(_step([], "a"), done=lambda: ended.append("finished"))
        await flight.add(asyncio.sleep(60), done=lambda: ended.append("cancelled"))
        flight.tasks[1].cancel()  # before it ever ran
        await asyncio.sleep(0.01)
        return ended

    assert sorted(asyncio.run(run())) == ["cancelled", "finished"]


class _Message:
    def __init__(self) -> None:
        self.refcount = 1  # the stream's own reference

    def incref(self) -> None:
        self.refcount += 1


class _Event:
    def __init__(self) -> None:
        self.message = _Message()


class _Stream:
    """Acks as Faust's stream does: one reference dropped; committable at zero."""

    def __init__(self) -> None:
        self.committable: list[_Event] = []

    async def ack(self, event: Any) -> bool:
        event.message.refcount -= 1
        if event.message.refcount == 0:
            self.committable.append(event)
        return event.message.refcount == 0


def test_a_held_event_is_committable_only_after_its_release() -> None:
    async def run() -> tuple[int, int]:
        stream, events = _Stream(), [_Event(), _Event()]
        hold(events)
        for event in events:  # Faust's ack at the end of the agent's loop body
            await stream.ack(event)
        before = len(stream.committable)
        await release(stream, events)
        return before, len(stream.committable)

    assert asyncio.run(run()) == (0, 2)


def _held(stream: _Stream, n: int = 2) -> list[_Event]:
    events = [_Event() for _ in range(n)]
    hold(events)
    return events


async def _acked_by_faust(stream: _Stream, events: list[_Event]) -> None:
    for event in events:  # the end of the agent's loop body
        await stream.ack(event)


async def _serve_held(
    stream: _Stream,
    serve: Any,
    *,
    topics: Any = None,
    changelog: Any = None,
    receipts: Receipts | None = None,
    clock: Any = None,
    served_events: int | None = None,
) -> None:
    """Hold a batch of two events, have Faust ack them, then `serve_held` it."""
    events = _held(stream)
    await _acked_by_faust(stream, events)
    timing = {} if clock is None else {"clock": clock}
    await serve_held(
        stream,
        events,
        serve,
        lock=asyncio.Lock(),
        topics=topics or fake_topics(),
        changelog=changelog or NoChangelog(),
        receipts=receipts or Receipts(),
        retry=FAST,
        served_events=served_events,
        **timing,
    )


def test_a_served_batch_produces_then_releases() -> None:
    topics = fake_topics()

    async def serve(outbox: Outbox) -> None:
        outbox.records.append((b"u1", b"{}", 1.0))

    async def run() -> tuple[int, int]:
        stream = _Stream()
        await _serve_held(stream, serve, topics=topics)
        return len(topics.recommendations.sent), len(stream.committable)  # type: ignore[attr-defined]

    assert asyncio.run(run()) == (1, 2)


def test_a_failed_batch_stays_uncommitted_and_its_error_is_raised() -> None:
    """Faust acknowledges a batch whose loop body raised; the hold keeps its offsets
    from being committed, so the restarted worker reads it again."""

    async def serve(outbox: Outbox) -> None:
        raise RuntimeError("broker down")

    async def run() -> int:
        stream = _Stream()
        with pytest.raises(RuntimeError, match="broker down"):
            await _serve_held(stream, serve)
        return len(stream.committable)

    assert asyncio.run(run()) == 0


def test_a_batch_cancelled_while_stopping_stays_uncommitted() -> None:
    async def serve(outbox: Outbox) -> None:
        await asyncio.sleep(60)

    async def run() -> int:
        stream = _Stream()
        task = asyncio.ensure_future(_serve_held(stream, serve))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return len(stream.committable)

    assert asyncio.run(run()) == 0  # read again after the restart: at least once


def _stage(name: str) -> tuple[float, float]:
    """(seconds summed over events, events) of one stage, as the worker exposes them."""
    seconds = metrics.STAGE_SECONDS.labels(stage=name)._value.get()
    return seconds, metrics.STAGE_EVENTS.labels(stage=name)._value.get()


def test_a_served_batch_is_timed_by_stage_per_event() -> None:
    """Waiting for the lock, serving under it and producing are each counted once per
    event of the batch, with the time the batch spent there (a clock that moves 1 s
    at each reading)."""
    ticks = iter(range(100))
    topics = fake_topics()

    async def serve(outbox: Outbox) -> None:
        outbox.records.append((b"u1", b"{}", 1.0))

    async def run() -> None:
        await _serve_held(_Stream(), serve, topics=topics, clock=lambda: next(ticks))

    before = {name: _stage(name) for name in ("queue", "serve", "produce")}
    asyncio.run(run())
    for name in ("queue", "serve", "produce"):
        seconds, events = _stage(name)
        # clock reads 0 (start), 1 (locked), 2 (served), 3 (produced): 1 s each, 2 events
        assert (seconds - before[name][0], events - before[name][1]) == (2.0, 2.0)


def test_only_the_events_a_batch_serves_are_timed() -> None:
    """An ingest batch also holds records it forwarded (timed where they are served) or
    dead-lettered: of the batch's two events one is served here, so each stage counts
    one event."""
    ticks = iter(range(100))

    async def serve(outbox: Outbox) -> None:
        outbox.records.append((b"u1", b"{}", 1.0))

    async def run() -> None:
        await _serve_held(_Stream(), serve, clock=lambda: next(ticks), served_events=1)

    before = {name: _stage(name) for name in ("queue", "serve", "produce")}
    asyncio.run(run())
    for name in ("queue", "serve", "produce"):
        seconds, events = _stage(name)
        assert (seconds - before[name][0], events - before[name][1]) == (1.0, 1.0)


class _Changelog:
    """A users table whose changelog writes are delivered when the test says."""

    def __init__(self) -> None:
        self.unconfirmed: list[tuple[bytes, asyncio.Future[None]]] = []

    def write(self, key: bytes) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unconfirmed.append((key, delivery))
        return delivery

    def take_unconfirmed(self) -> list[tuple[bytes, asyncio.Future[None]]]:
        taken, self.unconfirmed = self.unconfirmed, []
        return taken

    def resend(self, key: bytes) -> asyncio.Future[None]:
        raise AssertionError("no write failed")


def test_a_batch_is_released_only_once_its_state_writes_are_delivered() -> None:
    """Faust's commit does not wait for a changelog write's delivery; the batch does,
    and only for the writes it made under the lock (a later batch's stay for it)."""
    changelog = _Changelog()

    async def run() -> None:
        stream = _Stream()
        mine: list[asyncio.Future[None]] = []

        async def serve(outbox: Outbox) -> None:
            mine.append(changelog.write(b"u1"))

        task = asyncio.ensure_future(_serve_held(stream, serve, changelog=changelog))
        await asyncio.sleep(0.01)
        later = changelog.write(b"u2")  # the next batch's, made after this one's lock
        await asyncio.sleep(0.01)
        assert not task.done() and not stream.committable
        mine[0].set_result(None)
        await task
        assert len(stream.committable) == 2 and not later.done()
        assert [key for key, _ in changelog.unconfirmed] == [b"u2"]

    asyncio.run(run())


class _Pending:
    """A topic whose records are delivered when the test says."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(self, **record: Any) -> asyncio.Future[None]:
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


async def _released_after_delivery(serve: Any, receipts: Receipts, pending: _Pending) -> None:
    """``serve`` the held batch; it stays uncommitted until ``pending``'s record is
    delivered, then both events are committable."""
    stream = _Stream()
    task = asyncio.ensure_future(_serve_held(stream, serve, receipts=receipts))
    await asyncio.sleep(0.01)
    assert not task.done() and not stream.committable
    pending.deliveries[0].set_result(None)
    await task
    assert len(stream.committable) == 2


def test_a_batch_with_nothing_to_serve_is_released_once_its_forwards_are_delivered() -> None:
    """An ingest batch whose records all went to the by-user topic (or dead letters)
    serves nothing here; its offsets wait for those records' deliveries."""
    forwards = _Pending()

    async def run() -> None:
        receipts = Receipts()
        await receipts.topic(forwards).send(key=b"u1", value=b"{}", timestamp=1.0)
        await _released_after_delivery(None, receipts, forwards)

    asyncio.run(run())


def test_a_served_batch_is_released_only_once_its_dead_letters_are_delivered() -> None:
    dead = _Pending()

    async def run() -> None:
        receipts = Receipts()
        tracked = receipts.topic(dead)

        async def serve(outbox: Outbox) -> None:  # one event served, one dead-lettered
            outbox.records.append((b"u1", b"{}", 1.0))
            await tracked.send(key="u2", value=b"{}")

        await _released_after_delivery(serve, receipts, dead)

    asyncio.run(run())


def test_a_batch_whose_forward_is_refused_for_good_stays_uncommitted() -> None:
    forwards = _Pending()

    async def run() -> None:
        stream, receipts = _Stream(), Receipts()
        await receipts.topic(forwards).send(key=b"u1", value=b"{}")
        forwards.deliveries[0].set_exception(RecordTooLargeError())
        with pytest.raises(RecordTooLargeError):
            await _serve_held(stream, None, receipts=receipts)
        assert not stream.committable

    asyncio.run(run())
