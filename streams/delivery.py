"""What a batch owes the broker before its offsets may be committed, confirmed delivered.

Awaiting Faust's ``Topic.send`` only queues a record in the producer; its delivery is a
second future. A table write is queued one step earlier (``send_soon``). Faust commits
after ``producer.flush()``, which (with `streams.transport.DrainableBuffer`) waits until
every record has been tried, but not whether it was delivered: aiokafka's ``flush`` is an
``asyncio.wait``, so a record the broker refused, or one still failing when the request
timeout ran out, counted as done and its offset was committed (docs/ENVIRONMENT-NOTES.md).
So a served batch confirms both before its events are released
(`streams.agents.serve_held`):

- `Outbox`: its recommendations, each produced and its delivery awaited;
- `Receipts`: the records it produced as it went, its forwards to the by-user topic and
  its dead letters;
- `confirm_writes`: the users table's changelog records it wrote (`Changelog`).

A transient failure (`streams.remote.is_transient`) is retried with the retry settings'
backoff until it works, whatever ``give_up_after`` says: these records have nowhere else
to go, and the batch's offsets wait for them. Any other error is raised, and the batch
stays unreleased (read again after a restart).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from streams import metrics
from streams.remote import Backoff, is_transient
from streams.settings import RetryConfig

if TYPE_CHECKING:
    from streams.app import Topics


#: A changelog write: the table key and the future of its record's delivery.
Write = tuple[Any, "asyncio.Future[Any]"]

K = TypeVar("K", bound=Hashable)


def delivery_error(delivery: asyncio.Future[Any]) -> BaseException | None:
    """The error of a finished delivery (cancelled counts as one), or None."""
    if delivery.cancelled():
        return asyncio.CancelledError("the delivery was cancelled")
    return delivery.exception()


def _first(errors: Sequence[BaseException]) -> BaseException | None:
    """The error to act on: one that is not transient if any (it is raised), else the
    first."""
    for error in errors:
        if not is_transient(error):
            return error
    return errors[0] if errors else None


class Outbox:
    """The recommendations of served batches, in order, still to be produced and
    confirmed: a batch in flight produces them after it leaves the serving lock
    (`streams.inflight`). Each send round queues every record, then awaits each one's
    delivery; a record leaves the outbox once delivered, so a retry never produces a
    delivered one twice."""

    def __init__(self, retry: RetryConfig) -> None:
        self.retry = retry
        self.records: deque[tuple[bytes, bytes, float]] = deque()  # key, value, latency ms

    async def send(self, topics: Topics) -> None:
        backoff = Backoff(self.retry)
        while self.records:
            error = await self._send_round(topics.recommendations)
            if error is None:
                continue
            if not is_transient(error):
                raise error
            metrics.SENT_AGAIN.labels(what="recommendations").inc(len(self.records))
            await backoff.wait(f"producing {len(self.records)} recommendations", error)

    async def _send_round(self, topic: Any) -> BaseException | None:
        """Queue every record (stopping at the first that cannot be queued), await the
        deliveries, keep what was not delivered; the error to act on, or None."""
        queued: list[tuple[tuple[bytes, bytes, float], asyncio.Future[Any]]] = []
        errors: list[BaseException] = []
        for record in self.records:
            try:
                queued.append((record, await topic.send(key=record[0], value=record[1])))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors.append(exc)
                break
        if queued:
            await asyncio.wait([delivery for _, delivery in queued])
        kept: deque[tuple[bytes, bytes, float]] = deque()
        for record, delivery in queued:
            error = delivery_error(delivery)
            if error is None:
                metrics.RECOMMENDATIONS.inc()
                metrics.LATENCY.observe(record[2] / 1000.0)
            else:
                errors.append(error)
                kept.append(record)
        kept.extend(list(self.records)[len(queued) :])
        self.records = kept
        return _first(errors)


async def confirm_writes(
    writes: Sequence[Write],
    resend: Callable[[Any], asyncio.Future[Any]],
    retry: RetryConfig,
) -> None:
    """Wait until every write is delivered. A key whose write failed transiently has its
    table's current value (a tombstone if it is gone) written again by ``resend``: the
    changelog is compacted, the latest record per key is what restores the table, and a
    write issued now cannot be older than one that already landed."""

    async def again(key: Any) -> asyncio.Future[Any]:
        return resend(key)

    await _confirm(writes, again, retry, "changelog", "writing changelog records")


async def _confirm(
    deliveries: Sequence[tuple[K, asyncio.Future[Any]]],
    resend: Callable[[K], Awaitable[asyncio.Future[Any]]],
    retry: RetryConfig,
    series: str,
    what: str,
) -> None:
    """Wait until every delivery is done; send what failed transiently again (once per
    key) after the backoff, until all is delivered; raise any other error. ``series``:
    the label of `metrics.SENT_AGAIN` counting what is sent again; ``what``: for the
    log."""
    backoff = Backoff(retry)
    while deliveries:
        await asyncio.wait([delivery for _, delivery in deliveries])
        failed = [(key, e) for key, d in deliveries if (e := delivery_error(d)) is not None]
        if not failed:
            return
        error = _first([e for _, e in failed])
        assert error is not None
        if not is_transient(error):
            raise error
        again = list(dict.fromkeys(key for key, _ in failed))
        metrics.SENT_AGAIN.labels(what=series).inc(len(again))
        await backoff.wait(f"{what} ({len(failed)})", error)
        deliveries = [(key, await resend(key)) for key in again]


@dataclass(frozen=True, eq=False)  # one record per send: hashed by identity
class _Sent:
    topic: Any
    record: dict[str, Any]  # the keyword arguments of its ``send``


class Receipts:
    """The records a batch produces as it goes, outside the outbox: its forwards to the
    by-user topic and its dead letters. Sent through `topic` (or `tracking`'s topics),
    each one's delivery is kept and `confirm` awaits them all, so a record the broker
    refused is produced again before the batch's offsets go, not lost behind them.

    A send that fails transiently while queueing is kept as a failed delivery and sent
    again by `confirm`, so a broker outage never fails the routing of a record. A record
    sent again lands after later records of its batch: a user whose forward had to be
    sent again may have that event served after their next one."""

    def __init__(self) -> None:
        self.sent: list[tuple[_Sent, asyncio.Future[Any]]] = []

    def topic(self, topic: Any) -> _Tracked:
        """``topic``, its sends kept here."""
        return _Tracked(topic, self)

    def tracking(self, topics: Topics) -> Topics:
        """``topics`` with the by-user and dead-letter topics' sends kept here."""
        return replace(
            topics, by_user=self.topic(topics.by_user), dead_letters=self.topic(topics.dead_letters)
        )

    async def confirm(self, retry: RetryConfig) -> None:
        """Wait until every record sent so far is delivered (`_confirm`)."""
        sent, self.sent = self.sent, []
        await _confirm(
            sent, _queue, retry, "forwards_and_dead_letters", "producing forwards and dead letters"
        )


class _Tracked:
    """A topic whose sends are kept in a batch's `Receipts`."""

    def __init__(self, topic: Any, receipts: Receipts) -> None:
        self.topic, self.receipts = topic, receipts

    async def send(self, **record: Any) -> asyncio.Future[Any]:
        sent = _Sent(self.topic, record)
        delivery = await _queue(sent)
        self.receipts.sent.append((sent, delivery))
        return delivery


async def _queue(sent: _Sent) -> asyncio.Future[Any]:
    """Queue the record; its delivery, or (queueing failed transiently) a failed one."""
    try:
        delivery: asyncio.Future[Any] = await sent.topic.send(**sent.record)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_exception(exc)
    return delivery


class Changelog(Protocol):
    """What a batch confirms its state writes through: the users table (`streams.app`)."""

    def take_unconfirmed(self) -> list[Write]:
        """The changelog writes made since the last call (the caller confirms them)."""
        ...

    def resend(self, key: Any) -> asyncio.Future[Any]:
        """Write the key's current value (a tombstone if it is gone) to the changelog."""
        ...
