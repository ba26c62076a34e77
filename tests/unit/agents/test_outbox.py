"""The outbox produces a batch's recommendations in order, waits out the broker's
transient failures without producing a record twice, and raises any other error with
the unsent records kept."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from streams.app import Topics
from streams.events import Outbox
from tests.unit.agents.helpers import FAST, fake_topics


@dataclass
class FlakyTopic:
    """Fails the sends whose (0-based) attempt number is in ``failing``."""

    failing: dict[int, Exception]
    sent: list[bytes] = field(default_factory=list)
    attempts: int = 0

    async def send(self, *, key: bytes, value: bytes) -> None:
        attempt, self.attempts = self.attempts, self.attempts + 1
        if attempt in self.failing:
            raise self.failing[attempt]
        self.sent.append(key)


def _topics(topic: FlakyTopic) -> Topics:
    return replace(fake_topics(), recommendations=topic)


def _outbox(n: int) -> Outbox:
    outbox = Outbox(FAST)
    outbox.records.extend((f"u{k}".encode(), b"{}", 1.0) for k in range(n))
    return outbox


def test_transient_broker_failures_are_waited_out_and_nothing_is_sent_twice() -> None:
    topic = FlakyTopic(
        {1: KafkaConnectionError("down"), 2: KafkaTimeoutError(), 4: KafkaConnectionError()}
    )
    outbox = _outbox(3)
    asyncio.run(outbox.send(_topics(topic)))
    assert topic.sent == [b"u0", b"u1", b"u2"]
    assert topic.attempts == 6 and not outbox.records


def test_an_error_that_is_not_transient_is_raised_and_the_unsent_records_kept() -> None:
    topic = FlakyTopic({1: MessageSizeTooLargeError()})
    outbox = _outbox(3)
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(outbox.send(_topics(topic)))
    assert topic.sent == [b"u0"]
    assert [key for key, _, _ in outbox.records] == [b"u1", b"u2"]
