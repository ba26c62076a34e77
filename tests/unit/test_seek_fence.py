"""The consumer's fence around seeks (`streams.transport.SeekFencedConsumer`): records of a
batch fetched before a seek are not handed out after it for the partitions the seek moved
back, read offsets and gaps filed against the old position are undone, and a commit never
moves past a record at the committed position that is neither processed nor a gap.

Faust's parent methods are replaced by fakes that do what they do to the offsets; the
restarted worker of tests/integration/test_recovery.py is the real case."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]

from streams.transport import SeekFencedConsumer, head_done

A, B = TP("events", 0), TP("events", 1)


def consumer() -> SeekFencedConsumer:
    c = SeekFencedConsumer.__new__(SeekFencedConsumer)  # no transport: offsets only
    c._read_offset = defaultdict(lambda: None)
    c._committed_offset = defaultdict(lambda: None)
    c._gap = defaultdict(IntervalTree)
    c._acked = defaultdict(list)
    c._acked_index = defaultdict(set)
    c.log = SimpleNamespace(dev=lambda *args: None)  # type: ignore[assignment]
    c.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics={"users-changelog"}))  # type: ignore[assignment]
    return c


def drain(c: SeekFencedConsumer, seek_after: tuple[TP, int] | None) -> list[tuple[TP, int]]:
    """Faust's drain loop in short: hand out each record, file a gap when the offset
    jumps, set the read offset after the record's callback; the seek (committed: A at
    100, B never committed) runs during the callback of ``seek_after``."""

    async def run() -> list[tuple[TP, int]]:
        out = []
        async for tp, offset in c.getmany(timeout=1.0):
            last = c._read_offset[tp]
            if last is not None and offset - last > 1:
                c._gap[tp].addi(last + 1, offset + 1)
            out.append((tp, offset))
            if (tp, offset) == seek_after:
                await c.perform_seek()
            c._read_offset[tp] = offset
        return out

    return asyncio.run(run())


class Log:
    """The fake parent's side: the batch its getmany hands out and the seeks made."""

    def __init__(self) -> None:
        self.batch: list[tuple[TP, int]] = []
        self.sought: list[tuple[TP, int | str]] = []
        self.assigned: set[TP] = {A, B, TP("users-changelog", 0)}
        self.revoked_meanwhile: set[TP] = set()  # held when checked, gone by the seek


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Log:
    """Faust's parent methods faked: getmany hands out ``log.batch``; the committed
    offsets are A at 100, none for B, 7 for a changelog partition; seeks are recorded."""
    out = Log()

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, int]]:
        for record in out.batch:
            yield record

    async def seek_to_committed(self: Any) -> dict[TP, int | None]:
        out.sought.append((A, 100))  # aiokafka moves only A: B was never committed
        return {A: 100, B: None, TP("users-changelog", 0): 7}

    def held(tps: tuple[TP, ...]) -> None:  # aiokafka's check, on the whole call
        gone = set(tps) - (out.assigned - out.revoked_meanwhile)
        if gone:
            raise IllegalStateError(f"Partitions {gone} are not assigned")

    async def seek(self: Any, tp: TP, offset: int) -> None:
        held((tp,))
        out.sought.append((tp, offset))

    async def seek_to_beginning(*tps: TP) -> None:
        held(tps)
        out.sought += [(tp, "start") for tp in tps]

    def assignment(self: Any) -> set[TP]:
        return out.assigned

    monkeypatch.setattr(
        driver.Consumer,
        "_thread",
        SimpleNamespace(seek_to_beginning=seek_to_beginning),
        raising=False,
    )
    monkeypatch.setattr(driver.Consumer, "getmany", getmany)
    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(driver.Consumer, "_seek", seek)
    monkeypatch.setattr(driver.Consumer, "assignment", assignment)
    return out


def test_a_batch_without_a_seek_is_handed_out_whole(log: Log) -> None:
    log.batch += [(A, 100), (B, 5), (A, 101)]
    c = consumer()
    assert drain(c, seek_after=None) == log.batch
    assert c._read_offset[A] == 101 and not log.sought


def test_after_a_seek_the_stream_partitions_are_sought_again_and_their_records_wait(
    log: Log,
) -> None:
    log.batch += [(A, 100), (A, 101), (B, 5), (A, 102), (A, 140), (B, 6)]
    c = consumer()
    got = drain(c, seek_after=(A, 101))
    # The rest of the batch comes again: A from its committed 100, B (never committed)
    # from the start of its log, whether the batch was fetched before the seek or after
    # (what was queued is cleared when the flow resumes); the changelog is left alone.
    assert got == [(A, 100), (A, 101)]
    again = [(A, 100), (B, "start")]
    assert log.sought == again + again
    assert c._read_offset[A] == 100, "the record handed out across the seek kept its offset"
    assert c._read_offset[B] is None
    assert not c._gap[A], "a jump from the stale batch was filed as a gap"


@pytest.mark.parametrize("gone", [A, B])
@pytest.mark.parametrize("when", ["before", "during"])
def test_a_partition_a_rebalance_took_is_not_sought_again(log: Log, gone: TP, when: str) -> None:
    """A rebalance between the seek and the seek again (``before``), or while seeking
    again (``during``: the consumer's thread moved the assignment after the check),
    gave ``gone`` to another worker: the worker seeks the partitions it still holds and
    keeps going (aiokafka refused the seek and the worker crashed, in the fault suite)."""
    log.batch += [(A, 100), (A, 101), (B, 5), (A, 102)]
    c = consumer()
    if when == "before":
        log.assigned.discard(gone)
    else:
        log.revoked_meanwhile.add(gone)
    got = drain(c, seek_after=(A, 100))
    assert got == [(A, 100)]  # the rest comes again (from the new owner, for ``gone``)
    # (A, 100) first: aiokafka's own seek to the committed offsets (faked: it always
    # moves A); then the fence moves what this worker still holds, twice
    held = (B, "start") if gone == A else (A, 100)
    assert log.sought == [(A, 100), held, held] if gone == A else [(A, 100), held]


def test_a_seek_during_the_last_record_still_seeks_again(log: Log) -> None:
    log.batch += [(A, 130), (A, 131)]
    c = consumer()
    drain(c, seek_after=(A, 131))
    assert log.sought == [(A, 100), (B, "start")] * 2
    assert c._read_offset[A] == 100


async def take(c: SeekFencedConsumer) -> list[tuple[TP, int]]:
    """One batch through Faust's drain loop: a record behind its partition's read offset
    is dropped as already read, a jump is filed as a gap, the read offset is set."""
    out = []
    async for tp, offset in c.getmany(timeout=1.0):
        last = c._read_offset[tp]
        if last is not None and offset < last:
            continue
        if last is not None and offset - last > 1:
            c._gap[tp].addi(last + 1, offset + 1)
        out.append((tp, offset))
        c._read_offset[tp] = offset
    return out


def seek_in_two(log: Log, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """aiokafka's seek to the committed offsets made, the rest of the seek (Faust's read
    offsets, this fence's bookkeeping) held until the returned event is set."""
    rest = asyncio.Event()

    async def seek_to_committed(self: Any) -> dict[TP, int | None]:
        log.sought.append((A, 100))
        await rest.wait()
        return {A: 100, B: None, TP("users-changelog", 0): 7}

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    return rest


@pytest.mark.parametrize("during", [[(A, 100), (A, 101)], [(TP("users-changelog", 0), 8)]])
def test_a_batch_handed_out_within_a_seek_fences_the_next_one(
    log: Log, monkeypatch: pytest.MonkeyPatch, during: list[tuple[TP, int]]
) -> None:
    """The restarted worker of the SIGKILL test: records up to 140 were handed out before
    the seek (their copies are cleared when the flow resumes); aiokafka moved A back to
    100 and a whole batch fetched from there went by while the seek was still under way,
    dropped against the old read offset. The next batch, from past them, must not be
    handed out (the jump 100 -> 141 would be filed as a gap: 101-140 lost). A batch of
    changelog records alone (the recovery's) fences nothing."""
    c = consumer()
    c._read_offset[A] = 140
    rest = seek_in_two(log, monkeypatch)

    async def scenario() -> tuple[list[Any], list[Any]]:
        seeking = asyncio.create_task(c.perform_seek())
        await asyncio.sleep(0)
        log.batch[:] = during
        first = await take(c)
        rest.set()
        await seeking
        log.batch[:] = [(A, 141), (A, 142)]
        return first, await take(c)

    first, second = asyncio.run(scenario())
    seek = [(A, 100), (B, "start")]
    if during[0][0] == A:
        assert first == [], "records behind the old read offset were handed out"
        assert second == [], "the batch after the seek was handed out unfenced"
        assert log.sought == seek + seek
        assert c._read_offset[A] == 100 and not c._gap[A]
        log.batch[:] = [(A, 100), (A, 101)]
        assert asyncio.run(take(c)) == [(A, 100), (A, 101)]  # fetched again, handed out
    else:
        assert first == during and log.sought == seek
        assert second == [(A, 141), (A, 142)]  # (a jump from 100: the test's own setup)


def test_without_the_fence_the_stale_batch_loses_records(log: Log) -> None:
    """What Faust does unfenced: the jump 101 -> 140 after the seek is filed as a gap
    (offsets counted as processed) and the read offset is left past the refetch."""
    log.batch += [(A, 100), (A, 101), (A, 140)]
    c = consumer()

    async def unfenced(self: Any, timeout: float) -> AsyncIterator[Any]:
        async for record in driver.Consumer.getmany(self, timeout):
            yield record

    c.getmany = unfenced.__get__(c)  # type: ignore[method-assign]
    drain(c, seek_after=(A, 101))
    assert c._gap[A].overlaps(120) and c._read_offset[A] == 140


@pytest.mark.parametrize(
    ("committed", "acked", "gaps", "done"),
    [
        (None, set(), [], True),  # nothing committed yet: Faust's rule
        (100, {100, 101}, [], True),
        (100, {101, 102}, [], False),  # 100 in flight: Faust's own check commits 103
        (100, set(), [(100, 105)], True),  # a gap in the log at the position
        (100, set(), [(101, 105)], True),  # as Faust files a gap met right after a seek
        (100, {103}, [(102, 103)], False),
    ],
)
def test_head_done(
    committed: int | None, acked: set[int], gaps: list[tuple[int, int]], done: bool
) -> None:
    tree = IntervalTree()
    for begin, end in gaps:
        tree.addi(begin, end)
    assert head_done(committed, acked, tree) is done


def test_a_commit_waits_for_the_record_at_the_committed_position() -> None:
    c = consumer()
    c._committed_offset[A] = 100
    for offset in (101, 102):  # acked out of order; 100 still in a micro-batch
        c._acked[A].append(offset)
        c._acked_index[A].add(offset)
    assert c._new_offset(A) is None
    c._acked[A].append(100)
    c._acked_index[A].add(100)
    assert c._new_offset(A) == 103


@dataclass(eq=False)
class Record:
    """A fetched record as the consumer's ack reads it."""

    offset: int
    generation_id: int
    acked: bool = False
    tp: TP = A
    topic: str = "events"


def test_an_ack_of_a_record_from_before_the_rebalance_does_not_count() -> None:
    c = consumer()
    app: Any = c.app
    app.consumer_generation_id = 2
    app.topics = SimpleNamespace(acks_enabled_for=lambda topic: True)
    c._unacked_messages = set[Any]()
    c._n_acked = 0
    c._waiting_for_ack = None
    c._committed_offset[A] = 100
    stale, fresh = Record(100, generation_id=1), Record(100, generation_id=2)
    c._unacked_messages.add(stale)
    # a stream skips the stale copy after the rebalance and acks it: it must not let a
    # commit pass 100 before the copy fetched again from the committed offset is served
    assert c.ack(stale) is False
    assert stale.acked and stale not in c._unacked_messages
    assert c._new_offset(A) is None
    assert c.ack(fresh) is True
    assert c._new_offset(A) == 101


def livelock_check(state: Any, parent: Any, monkeypatch: pytest.MonkeyPatch) -> SeekFencedConsumer:
    """A consumer whose aiokafka state for ``A`` is ``state`` and whose Faust livelock check
    (the parent's ``verify_event_path``) is ``parent``."""
    assignment = SimpleNamespace(state_value=lambda tp: state)
    subscriptions = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    c = consumer()
    aio = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
    c._thread = SimpleNamespace(_ensure_consumer=lambda: aio)  # type: ignore[assignment]
    monkeypatch.setattr(driver.Consumer, "verify_event_path", parent)
    return c


def test_the_livelock_check_skips_a_partition_sought_to_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's livelock detector reads each partition's position on the event loop; one
    sought to the start of its log has none until the fetcher resets it, and aiokafka's
    assert then crashed the worker (fault suite, session 13)."""
    from aiokafka.consumer.subscription_state import TopicPartitionState

    async def scenario() -> None:
        state = TopicPartitionState(None)
        read: list[int] = []

        def parent(self: Any, now: float, tp: Any) -> None:
            read.append(state.position)  # what Faust's check does (asserts without one)

        c = livelock_check(state, parent, monkeypatch)
        state.seek(5)
        c.verify_event_path(0.0, A)
        assert read == [5]
        state.await_reset(1)  # seek_to_beginning: no position until the fetcher resets it
        c.verify_event_path(0.0, A)  # skipped, no AssertionError
        assert read == [5]

        def sought_meanwhile(self: Any, now: float, tp: Any) -> None:
            state.await_reset(1)  # the consumer's thread seeks between the guard and the read
            read.append(state.position)

        state.seek(7)
        c = livelock_check(state, sought_meanwhile, monkeypatch)
        c.verify_event_path(0.0, A)
        assert read == [5]

        def broken(self: Any, now: float, tp: Any) -> None:
            raise AssertionError("something else")

        state.seek(9)
        c = livelock_check(state, broken, monkeypatch)
        with pytest.raises(AssertionError, match="something else"):
            c.verify_event_path(0.0, A)  # any other failure still surfaces

    asyncio.run(scenario())
