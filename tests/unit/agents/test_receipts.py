"""The records a batch sends as it goes (forwards to the by-user topic, dead letters)
are confirmed delivered before its offsets go: a forward or dead letter the broker did
not take is sent again, the same record with its timestamp, and only it; a send that
fails transiently while queueing never fails the routing; an error that is not transient
is raised. Before, these records were left to Faust's flush, which counts a refused
record as done: a forward the broker refused was lost behind a committed offset."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
)

from streams.delivery import Receipts
from streams.events import route_event
from tests.unit.agents.helpers import FAST, FlakyTopic, Message, fake_topics, sent_again


def _event(user: str) -> Message:
    value = {"user_id": user, "item_id": "i1", "ts": 1.0}
    return Message(json.dumps(value).encode(), key=None, timestamp=7.0)


async def _route(receipts: Receipts, by_user: Any, dead: Any, messages: list[Message]) -> None:
    topics = receipts.tracking(replace(fake_topics(), by_user=by_user, dead_letters=dead))
    for message in messages:
        assert await route_event(message, topics) is None  # forwarded or dead-lettered


def test_a_forward_the_broker_did_not_take_is_sent_again_and_only_it() -> None:
    by_user = FlakyTopic(undelivered={1: NotLeaderForPartitionError(), 3: KafkaTimeoutError()})

    async def run() -> None:
        receipts = Receipts()
        await _route(receipts, by_user, FlakyTopic(), [_event("u0"), _event("u1"), _event("u2")])
        assert by_user.sent == [(b"u0", 7.0), (b"u2", 7.0)]  # u1's delivery failed
        await receipts.confirm(FAST)
        assert not receipts.sent

    before = sent_again("forwards_and_dead_letters")
    asyncio.run(run())
    # u1 again (fails again), then once more: with its event's produce timestamp
    assert by_user.sent == [(b"u0", 7.0), (b"u2", 7.0), (b"u1", 7.0)]
    assert by_user.attempts == 5
    assert sent_again("forwards_and_dead_letters") - before == 2  # the metric shows it


def test_a_broker_down_while_routing_fails_nothing_and_the_records_go_once_it_is_back() -> None:
    """Queueing fails transiently (the broker unreachable): routing goes on, and the
    batch's confirmation sends the forward and the dead letter again."""
    by_user = FlakyTopic(failing={0: KafkaConnectionError("down"), 1: KafkaConnectionError()})
    dead = FlakyTopic(failing={0: KafkaTimeoutError()})
    invalid = Message(b"{not json", key=b"k", offset=1)

    async def run() -> None:
        receipts = Receipts()
        await _route(receipts, by_user, dead, [_event("u0"), invalid])
        assert not by_user.sent and not dead.sent
        await receipts.confirm(FAST)

    asyncio.run(run())
    assert by_user.sent == [(b"u0", 7.0)] and by_user.attempts == 3
    assert [key for key, _ in dead.sent] == ["k"] and dead.attempts == 2


def test_a_dead_letter_refused_for_good_is_raised_not_dropped() -> None:
    dead = FlakyTopic(undelivered={0: RecordTooLargeError()})

    async def run() -> None:
        receipts = Receipts()
        await _route(receipts, FlakyTopic(), dead, [Message(b"[]", key=b"k")])
        await receipts.confirm(FAST)

    with pytest.raises(RecordTooLargeError):
        asyncio.run(run())
    assert dead.attempts == 1


def test_a_send_that_fails_for_good_while_queueing_is_raised_at_once() -> None:
    by_user = FlakyTopic(failing={0: MessageSizeTooLargeError()})

    async def run() -> None:
        await _route(Receipts(), by_user, FlakyTopic(), [_event("u0")])

    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(run())


def test_confirming_waits_for_deliveries_still_under_way_and_keeps_nothing() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        class Slow:
            async def send(self, **record: Any) -> asyncio.Future[None]:
                return pending

        receipts = Receipts()
        await receipts.topic(Slow()).send(key=b"u1", value=b"{}")
        asyncio.get_running_loop().call_later(0.02, lambda: log.append("delivered"))
        asyncio.get_running_loop().call_later(0.02, pending.set_result, None)
        await receipts.confirm(FAST)
        log.append("confirmed")
        await receipts.confirm(FAST)  # nothing left: returns at once
        return log

    assert asyncio.run(run()) == ["delivered", "confirmed"]
