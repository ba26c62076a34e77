"""What a batch owes the broker is confirmed delivered: the outbox produces a batch's
recommendations in order and awaits each delivery, waits out the broker's transient
failures (queueing or delivery) without producing a delivered record twice, and raises
any other error with the undelivered records kept; changelog writes are awaited the same
way, a failed one written again with its key's current value."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
)

from streams.app import Topics
from streams.delivery import Outbox, confirm_writes
from tests.unit.agents.helpers import FAST, FlakyTopic, delivered, fake_topics, sent_again


def _topics(topic: FlakyTopic) -> Topics:
    return replace(fake_topics(), recommendations=topic)


def _outbox(n: int) -> Outbox:
    outbox = Outbox(FAST)
    outbox.records.extend((f"u{k}".encode(), b"{}", 1.0) for k in range(n))
    return outbox


def test_transient_queueing_failures_are_waited_out_and_nothing_is_sent_twice() -> None:
    topic = FlakyTopic(
        failing={1: KafkaConnectionError("down"), 2: KafkaTimeoutError(), 4: KafkaConnectionError()}
    )
    outbox = _outbox(3)
    asyncio.run(outbox.send(_topics(topic)))
    # attempts: u0 ok, u1 fails; u1 fails; u1 ok, u2 fails; u2 ok
    assert topic.keys() == [b"u0", b"u1", b"u2"]
    assert topic.attempts == 6 and not outbox.records


def test_a_failed_delivery_is_sent_again_and_only_it() -> None:
    """A record the broker did not take (its delivery failed transiently) goes again;
    the delivered ones of the same round do not."""
    topic = FlakyTopic(undelivered={1: NotLeaderForPartitionError(), 3: KafkaTimeoutError()})
    outbox = _outbox(3)
    before = sent_again("recommendations")
    asyncio.run(outbox.send(_topics(topic)))
    # round 1: u0 ok, u1 undelivered, u2 ok; round 2: u1 undelivered; round 3: u1 ok
    assert topic.keys() == [b"u0", b"u2", b"u1"]
    assert topic.attempts == 5 and not outbox.records
    assert sent_again("recommendations") - before == 2


def test_an_error_that_is_not_transient_is_raised_and_the_unsent_records_kept() -> None:
    topic = FlakyTopic(failing={1: MessageSizeTooLargeError()})
    outbox = _outbox(3)
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(outbox.send(_topics(topic)))
    assert topic.keys() == [b"u0"]
    assert [key for key, _, _ in outbox.records] == [b"u1", b"u2"]


def test_a_delivery_the_broker_refuses_for_good_is_raised_not_dropped() -> None:
    """Before, a record the broker rejected was counted as produced and its offset
    committed by the next flush: silently lost."""
    topic = FlakyTopic(undelivered={0: RecordTooLargeError()})
    outbox = _outbox(2)
    with pytest.raises(RecordTooLargeError):
        asyncio.run(outbox.send(_topics(topic)))
    assert topic.keys() == [b"u1"]
    assert [key for key, _, _ in outbox.records] == [b"u0"]


def _writes(
    outcomes: dict[bytes, BaseException | None],
) -> list[tuple[bytes, asyncio.Future[None]]]:
    return [(key, delivered(error)) for key, error in outcomes.items()]


def test_changelog_writes_that_failed_transiently_are_written_again_with_the_current_value() -> (
    None
):
    resent: list[bytes] = []
    failing_again = {b"u2"}

    def resend(key: bytes) -> asyncio.Future[None]:
        resent.append(key)
        if key in failing_again:
            failing_again.discard(key)
            return delivered(KafkaConnectionError("down"))
        return delivered()

    async def run() -> None:
        writes = _writes({b"u1": None, b"u2": KafkaConnectionError("down"), b"u3": None})
        writes.append((b"u2", delivered(KafkaTimeoutError())))  # two writes, one key
        await confirm_writes(writes, resend, FAST)

    before = sent_again("changelog")
    asyncio.run(run())
    assert resent == [b"u2", b"u2"]  # once per round it failed in, never u1 or u3
    assert sent_again("changelog") - before == 2


def test_a_changelog_write_refused_for_good_is_raised() -> None:
    def resend(key: bytes) -> asyncio.Future[None]:
        raise AssertionError("an error that is not transient is not retried")

    async def run() -> None:
        await confirm_writes(_writes({b"u1": RecordTooLargeError()}), resend, FAST)

    with pytest.raises(RecordTooLargeError):
        asyncio.run(run())


def test_confirming_waits_for_deliveries_still_under_way() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def deliver_later() -> None:
            await asyncio.sleep(0.02)
            log.append("delivered")
            pending.set_result(None)

        later = asyncio.ensure_future(deliver_later())
        await confirm_writes([(b"u1", pending)], lambda key: delivered(), FAST)
        log.append("confirmed")
        await later
        return log

    assert asyncio.run(run()) == ["delivered", "confirmed"]
