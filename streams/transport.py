"""Faust's aiokafka transport, adjusted to the embedded broker (Tansu 0.6).

1. Faust 0.15.3 hard-codes ``fetch_max_wait_ms=1500`` for worker consumers. On a broker
   that answers a fetch as soon as data arrives that costs nothing, but Tansu does not
   wake an aiokafka long-poll on new data: every hop then waits out the full 1.5 s
   (measured: aiokafka delivery 615 ms median at 1500, 15 ms at 100; see
   docs/ENVIRONMENT-NOTES.md). ``STREAMREC_KAFKA__FETCH_MAX_WAIT_MS`` sets it, and
   while records flow ``STREAMREC_KAFKA__FETCH_BUSY_WAIT_MS`` (`streams.fetch_wait`).
2. Tansu's ListOffsets answers "first offset of the last record batch + 1", not the end
   of the log, and Faust's table recovery reads changelogs only up to that: the last
   batch of states written before a rebalance or a restart was not restored, so users
   lost events (found by the 3-worker test). `true_highwaters` asks for the end that a
   fetch reports instead; on a broker whose ListOffsets is right it finds the same.
3. Faust commits offsets after ``producer.flush()``, but its producer buffer's flush
   gives up as soon as 0.1 s pass without a message leaving the buffer, with table
   changelog writes still queued. Offsets were then committed ahead of the states they
   produced, and a partition's next owner restored states missing those events and did
   not process them again (the 1-in-16 failure of the worker-added-mid-stream test, when
   the broker is slow during rebalances). `DrainableBuffer.drain` waits for all of them.
4. When a worker's recovery ends, Faust resumes the stream partitions and only then seeks
   them to the committed offsets; the fetcher, already running, can be handing out a
   batch fetched from before the seek. The rest of that batch then went on after the seek
   reset the read offsets: Faust took the jump for a gap in the log (and counted those
   offsets as processed) or dropped the records fetched again as already read, so a
   restarted worker never served some events and committed past them (found by the
   SIGKILL test with micro-batches in the ingest agent; docs/ENVIRONMENT-NOTES.md).
   `SeekFencedConsumer` ends a batch at a seek and seeks every stream partition again
   (to its committed offset, or to the start of its log when it has none, as
   ``auto_offset_reset=earliest`` reads it: aiokafka leaves those where the fetch got to),
   so what the batch and the cleared queues held comes again. A batch that began and
   ended while the seek was under way counts too: aiokafka had moved the partitions back,
   the records it fetched again were dropped against read offsets the seek had not reset
   yet, and the next batch, from past them, took the jump for a gap (2 runs in 64 of the
   SIGKILL test lost events so once the fetcher handed records off in place, 6., and a
   batch went by that quickly; docs/ENVIRONMENT-NOTES.md); so the first batch after such
   a seek is fenced as well.
   And an offset is never committed while the record at the committed position is
   neither processed nor a gap (Faust's own check lets exactly that one through), nor on
   the ack of a record fetched before the last rebalance (a stream skips those and Faust
   counted them as done).
5. Faust's livelock detector runs on the event loop and reads each partition's position
   from aiokafka's state, which the consumer's thread owns. A partition sought to the
   start of its log (4.) has no position until the fetcher resets it, and aiokafka
   asserts when one is read: the detector crashed a worker of the fault suite (session
   13). `SeekFencedConsumer.verify_event_path` skips such a partition until it has one.
6. Faust's fetch loop creates four tasks per record to hand it to the streams;
   `streams.handoff` hands it off in place when nothing makes it wait.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Container, Mapping
from contextlib import aclosing
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import ack_lock

from streams.fetch_wait import FetchWait, follow_traffic
from streams.handoff import EagerHandoffConsumer
from streams.kafka_auth import client_kwargs
from streams.kafka_settings import KafkaConfig

log = logging.getLogger(__name__)


async def true_highwaters(
    kafka: KafkaConfig, reported: Mapping[Any, int], timeout: float = 10.0
) -> dict[Any, int]:
    """{partition: end offset as a fetch reports it}, for partitions whose ListOffsets
    answer was ``reported`` (a lower bound). A fetch from the start of the last batch
    (``reported - 1``) carries the partition's real high watermark. Where none arrives in
    ``timeout`` seconds the reported value stays."""
    if not reported:
        return {}
    tps = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers(),
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        **client_kwargs(kafka),
    )
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for ktp, tp in tps.items():
            consumer.seek(ktp, max(reported[tp] - 1, 0))
        found: dict[Any, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found) < len(tps) and loop.time() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=1)
            for ktp, tp in tps.items():
                high = consumer.highwater(ktp)
                if high is not None and tp not in found:
                    found[tp] = max(int(high), reported[tp])
        missing = [tp for tp in tps.values() if tp not in found]
        if missing:
            log.warning("no fetch high watermark for %s: using ListOffsets", missing)
        return {tp: found.get(tp, reported[tp]) for tp in tps.values()}
    finally:
        await consumer.stop()


class DrainableBuffer(ProducerBuffer):
    """Faust's producer buffer, knowing the message it is handing to the client now (its
    ``size`` counts only those still queued) and able to wait for all of them."""

    in_flight: int = 0

    async def _send_pending(self, fut: Any) -> None:
        self.in_flight += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.in_flight -= 1

    async def drain(self) -> None:
        """Wait until every queued message has been handed to the client (faust's own
        ``flush`` returns after 0.1 s without progress, and ignores the one in flight)."""
        while self.size or self.in_flight:
            self.message_sent.clear()
            await self.message_sent.wait()  # set by the buffer's task after each send


def head_done(committed: int | None, acked: Container[int], gaps: Any) -> bool:
    """Whether a commit may move past the committed position (the next record to
    process): that record is processed (in ``acked``) or the log has a gap there (``gaps``,
    an IntervalTree of offsets the fetch jumped over). Faust files a gap met right after a
    seek from the position + 1, so a gap there counts too. No committed offset known:
    Faust's own rule decides."""
    if committed is None:
        return True
    return committed in acked or bool(gaps.overlaps(committed) or gaps.overlaps(committed + 1))


class SeekFencedConsumer(EagerHandoffConsumer):
    """Faust's aiokafka consumer whose batches end at a seek (4. above)."""

    _seeks: int = 0
    #: seeks to the committed offsets under way
    _seeking: int = 0
    #: a stream partition's record was handed out while a seek was under way: the first
    #: batch after it is fenced (4. above)
    _taken_while_seeking: bool = False
    #: stream partition -> the committed offset the last seek moved it to (None: never
    #: committed, moved to the start of its log as ``auto_offset_reset=earliest`` reads it)
    _sought: Mapping[Any, int | None] = {}

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed: Mapping[Any, int] = await super().seek_to_committed()
        sought = {
            tp: offset if offset and offset > 0 else None
            for tp, offset in committed.items()
            if not self._is_changelog_tp(tp)
        }
        # aiokafka leaves a partition without a committed offset where its fetch got to
        await self._to_start([tp for tp, offset in sought.items() if offset is None])
        self._sought = sought
        return committed

    async def perform_seek(self) -> None:
        self._seeking += 1
        try:
            await super().perform_seek()
        finally:
            self._seeking -= 1
        self._seeks += 1

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        seeks, moved = self._seeks, set[Any]()
        fetched = cast(AsyncGenerator[tuple[Any, Any], None], super().getmany(timeout))
        async with aclosing(fetched) as records:
            async for tp, message in records:
                if self._seeks != seeks or self._fence_due():
                    seeks = self._seeks
                    moved |= await self._seek_again()
                if tp not in moved:
                    if self._seeking and not self._is_changelog_tp(tp):
                        self._taken_while_seeking = True
                    yield tp, message
        # a seek while the batch's last record was handed out, or one the whole batch
        # was handed out within
        if self._seeks != seeks or self._fence_due():
            await self._seek_again()

    def _fence_due(self) -> bool:
        """Whether a seek that is over had a stream partition's record handed out while
        it was under way (and no seek again has followed)."""
        return self._taken_while_seeking and not self._seeking

    async def _seek_again(self) -> set[Any]:
        """After a seek that came while a batch was handed out: the stream partitions,
        sought again now that no fetch is under way (so every record from the committed
        offset on comes again, whether this batch was fetched before the seek or after:
        what was queued is cleared when the flow resumes), with the read offsets that puts
        back and no gap filed against the old position."""
        # Only partitions this worker still holds: a rebalance since the last seek may
        # have given some to another worker, which reads them from the committed offset
        # itself (and aiokafka refuses a seek on a partition it no longer holds).
        self._taken_while_seeking = False
        assigned = self.assignment()
        held = {tp: offset for tp, offset in self._sought.items() if tp in assigned}
        for tp, offset in held.items():
            if offset is None:  # to the start of its log: below
                continue
            if await self._held_seek(tp, offset) and tp in self._gap:
                self._gap[tp].chop(offset, sys.maxsize)
        fresh = [tp for tp, offset in held.items() if offset is None]
        await self._to_start(fresh)
        for tp in fresh:
            self._read_offset[tp] = None
            self._gap.pop(tp, None)
        return set(self._sought)

    async def _held_seek(self, tp: Any, offset: int) -> bool:
        """Seek ``tp``; False when a rebalance took it from this worker meanwhile (the
        consumer's thread moves the assignment while this loop runs)."""
        try:
            await self.seek(tp, offset)
        except IllegalStateError as exc:
            log.info("not seeking %s to %d: no longer assigned here (%s)", tp, offset, exc)
            return False
        return True

    async def _to_start(self, tps: list[Any]) -> None:
        for tp in tps:  # one at a time: aiokafka refuses the whole call if one is not held
            try:
                await self._thread.seek_to_beginning(tp)
            except IllegalStateError as exc:  # as in _held_seek: a rebalance took it
                log.info("not seeking %s to the start: no longer assigned here (%s)", tp, exc)

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Faust's livelock check, skipping a partition that awaits a seek to the start of
        its log (this fence's ``seek_to_beginning``, 5. above): it has no position yet,
        and aiokafka asserts when Faust reads one. It is checked again next time."""
        if self._awaiting_reset(tp):
            return None
        try:
            super().verify_event_path(now, tp)
            return None
        except AssertionError:
            if self._awaiting_reset(tp):  # the consumer's thread sought it meanwhile
                return None
            raise

    def _awaiting_reset(self, tp: Any) -> bool:
        subscription = self._thread._ensure_consumer()._fetcher._subscriptions.subscription
        assignment = None if subscription is None else subscription.assignment
        state = (
            None
            if assignment is None
            else assignment.state_value(TopicPartition(tp.topic, tp.partition))
        )
        return state is not None and not state.has_valid_position

    def ack(self, message: Any) -> bool:
        """An ack counts toward commits only for a record fetched in the current
        generation. Faust acks the records of an earlier one that a stream skips after a
        rebalance, and counted them: a commit could then pass them while their copies,
        fetched again from the committed offset, were still to be served."""
        if message.generation_id == self.app.consumer_generation_id:
            return bool(super().ack(message))
        with ack_lock:
            message.acked = True
            self._unacked_messages.discard(message)
        return False

    def _new_offset(self, tp: Any) -> int | None:
        if not head_done(self._committed_offset[tp], self._acked_index[tp], self._gap[tp]):
            return None
        offset: int | None = super()._new_offset(tp)
        return offset


def transport_class(kafka: KafkaConfig) -> type[Any]:
    """A faust Transport class whose worker consumers long-poll at most
    ``kafka.fetch_max_wait_ms``, whose recovery reads changelogs to their real end, and whose
    producer's flush (before every commit and on revoke) sends every queued write."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka hands this to its Fetcher when the consumer starts.
            consumer._fetch_max_wait_ms = kafka.fetch_max_wait_ms
            return consumer

        async def on_start(self) -> None:
            await super().on_start()
            assert self._consumer is not None  # started just now
            wait = FetchWait(kafka.fetch_busy_wait_ms, kafka.fetch_max_wait_ms)
            follow_traffic(self._consumer._fetcher, wait)

        async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
            reported = await super()._highwaters(partitions)
            if self.consumer.in_transaction:
                return reported
            return await true_highwaters(kafka, reported)

    class FastFetchConsumer(SeekFencedConsumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class DrainingProducer(driver.Producer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.drainable = DrainableBuffer(loop=self.loop, beacon=self.beacon)
            self.drainable.app = self.app
            self.buffer = self.drainable

        async def flush(self) -> None:
            await self.drainable.drain()
            await super().flush()

    class FastFetchTransport(driver.Transport):
        Consumer = FastFetchConsumer
        Producer = DrainingProducer

    return FastFetchTransport
