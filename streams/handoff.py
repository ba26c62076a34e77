"""The fetcher's hand-off of each record to the streams, without a task per record.

Faust's fetch loop (``Consumer._drain_messages``) hands every record to the conductor
(decode, then put on each subscribed stream's queue) through ``wait_first(callback,
suspend_flow.wait())``, so that a rebalance can abandon a hand-off that waits (its
flow control held, a full queue, a full producer buffer). That call creates four tasks
(the two coroutines and the service's stopped and crashed events) and cancels three:
about 39 µs per record on this machine, a tenth of the worker's CPU per event
(BENCHMARKS.md, session 27's profile). Almost every hand-off waits for nothing.

`EagerHandoffConsumer` runs the same loop, but starts each hand-off in place
(`start_eagerly`): one that completes without waiting costs a function call; one that
waits goes on in a task raced against the flow's suspension exactly as Faust does. Both
are interleavings Faust itself allows (its callback task runs first when nothing holds
it), so what a rebalance sees does not change: an abandoned record is marked read, and
the seek after the rebalance (`streams.transport`) fetches it again.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

from streams import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

#: records handed off between two turns given to the event loop (Faust's figure)
YIELD_EVERY = 100


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """The rest of ``coro``, whose first step yielded ``waiting_on`` (the future it awaits),
    as an awaitable for a task: the task's sends and throws go to ``coro`` as ``yield
    from`` would pass them."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: its cancellation
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


async def _finish(coro: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    return await _resume(coro, waiting_on)


def start_eagerly(handing: Awaitable[None]) -> Awaitable[None] | None:
    """Run ``handing`` up to its first wait, here and now. None: it finished (an exception
    it raised propagates). Otherwise what is left of it, to await or run as a task (an
    awaitable that is not a native coroutine: itself, not started)."""
    if not isinstance(handing, types.CoroutineType):
        return handing
    coro = cast(Coroutine[Any, Any, None], handing)
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return _finish(coro, waiting_on)


@dataclass
class Dropped:
    """A partition's records one fetch returned behind its read offset: how many, the
    first and last offsets, and the read offset they were dropped against."""

    read: int | None
    count: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, offset: int) -> None:
        self.count += 1
        self.first = offset if self.first is None else self.first
        self.last = offset


def report_dropped(dropped: Mapping[Any, Dropped]) -> None:
    """Records of one fetch dropped behind their partitions' read offsets: counted
    (`metrics.RECORDS_DROPPED`) and logged, one line per partition. Faust drops them
    without a word; dropped where none should be, a whole batch went missing that way,
    unseen (docs/ENVIRONMENT-NOTES.md, "A batch can begin and end inside the seek")."""
    for tp, drops in dropped.items():
        metrics.RECORDS_DROPPED.labels(topic=tp.topic).inc(drops.count)
        log.info(
            "dropped %d records of %s (offsets %s-%s) fetched again behind its read offset %s",
            drops.count,
            tp,
            drops.first,
            drops.last,
            drops.read,
        )


class EagerHandoffConsumer(driver.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands records off eagerly (above)."""

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop: fetch, hand each record to the streams, mark it read; until
        this consumer or the fetcher stops."""
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)  # a fetch may return at once, loop after loop
                if not self.should_stop:
                    since_yield = 0
                    dropped: dict[Any, Dropped] = {}
                    async for tp, message in records:
                        since_yield += 1
                        if since_yield > YIELD_EVERY:
                            await asyncio.sleep(0)
                            since_yield = 0
                        if not await self._hand_off(tp, message):  # read offset as it was
                            drops = dropped.setdefault(tp, Dropped(self._read_offset[tp]))
                            drops.add(message.offset)
                    report_dropped(dropped)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self._stopping():
                raise
        except asyncio.CancelledError:
            if not self._stopping():
                raise
        except Exception:
            log.exception("the fetch loop failed")
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _stopping(self) -> bool:
        """Whether the app is stopping (the fetch loop's end then is no failure)."""
        if self.transport.app.should_stop:
            log.info("the consumer stopped: its fetch loop ends")
            return True
        return False

    async def _hand_off(self, tp: Any, message: Any) -> bool:
        """One record: dropped if it is behind the partition's read offset (fetched again
        after a seek back), a gap filed if the offsets jumped, a commit if one is due,
        then handed to the streams and marked read. False: dropped."""
        offset, read = message.offset, self._read_offset[tp]
        if read is not None and offset < read:
            return False
        if read and offset - read > 1 and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, read + 1, offset)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        rest = start_eagerly(self.callback(message))
        if rest is not None:  # it waits: a rebalance may abandon it, as in Faust
            await self.wait_first(rest, self.suspend_flow.wait())
        self._read_offset[tp] = offset
        return True
