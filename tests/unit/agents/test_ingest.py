"""The ingest agent (`route_event`): validation, limits, bounded and unsendable dead
letters, hostile input; every record ends as a by-user record or a dead letter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streams.events import route_event
from streams.schemas import ERROR_LIMIT, KEY_LIMIT, RAW_LIMIT, DeadLetter, KeyedEvent
from streams.settings import LimitsConfig
from tests.unit.agents.helpers import Message, by_user, fake_topics, sent

PRODUCER_LIMIT = 1_048_576  # Kafka's default max.request.size / message.max.bytes


def test_an_oversized_record_gets_a_bounded_dead_letter() -> None:
    huge_key = b"k" * 3_000_000
    value = b'{"user_id": "' + b"\x00" * 900_000 + b'"'  # not JSON, mostly control chars
    topics = fake_topics()
    asyncio.run(route_event(Message(value, key=huge_key, offset=9), topics))
    ((key, raw),) = topics.dead_letters.sent  # type: ignore[attr-defined]
    letter = DeadLetter.model_validate_json(raw)
    assert letter.offset == 9 and letter.error.startswith("not valid UTF-8 JSON")
    assert len(key.encode()) <= KEY_LIMIT + 3 and letter.key == key
    assert len(letter.raw.encode()) <= RAW_LIMIT + 3
    assert len(letter.error.encode()) <= ERROR_LIMIT + 3
    assert len(raw) + len(key.encode()) < PRODUCER_LIMIT


def test_a_dead_letter_that_cannot_be_sent_fails_the_batch_instead_of_losing_it() -> None:
    """A failed send is a broker failure: it propagates, so the agent stops before its
    batch is acknowledged and the record is read again (never silently dropped)."""
    topics = fake_topics()
    topics.dead_letters.fail = ConnectionError("broker gone")  # type: ignore[attr-defined]
    with pytest.raises(ConnectionError):
        asyncio.run(route_event(Message(b"not json"), topics))


def test_keyed_event_round_trip_is_what_the_recommend_agent_reads() -> None:
    keyed = KeyedEvent.model_validate_json(by_user("e7", "u9").value or b"")
    assert (keyed.event.event_id, keyed.event.user_id, keyed.source.topic) == ("e7", "u9", "events")


def test_a_deeply_nested_event_is_dead_lettered_not_an_agent_crash() -> None:
    topics = fake_topics()
    value = b'{"user_id": "u", "item_id": "i", "ts": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000
    asyncio.run(route_event(Message(value + b"}", offset=4), topics))
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 4 and "nested" in letter.error
    assert sent(topics.by_user) == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"weight": 1e39}, "weight must be <="),
        ({"ts": -1e12}, "ts must be epoch seconds"),
        ({"user_id": "u\x00"}, "user_id: control character U+0000"),
        ({"scenario": "s" * 200_000}, "scenario: 200000 bytes"),
    ],
)
def test_route_event_applies_the_limits(value: dict[str, Any], reason: str) -> None:
    record = {"user_id": "u", "item_id": "i", "ts": 1.0, **value}
    topics = fake_topics()
    asyncio.run(route_event(Message(json.dumps(record).encode()), topics, LimitsConfig()))
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.error.startswith(reason)


def test_route_event_takes_its_limits_from_the_caller() -> None:
    record = {"user_id": "u", "item_id": "i", "ts": 1.0, "weight": 50.0}
    topics = fake_topics()
    raw = json.dumps(record).encode()
    asyncio.run(route_event(Message(raw), topics, LimitsConfig(weight_max=10)))
    asyncio.run(route_event(Message(raw, offset=1), topics, LimitsConfig(weight_max=100)))
    assert [d["offset"] for d in sent(topics.dead_letters)] == [0]
    assert len(sent(topics.by_user)) == 1


def test_an_error_of_the_routing_code_dead_letters_that_record_with_its_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RecursionError("deep inside")

    topics = fake_topics()
    monkeypatch.setattr("streams.events.decode_events_record", explode)
    asyncio.run(route_event(Message(b"{}", offset=2), topics))
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.error == "routing failed: RecursionError: deep inside"


def test_a_forwarded_event_keeps_its_produce_timestamp() -> None:
    """The recommend agent times an event's stages from when it was produced: the
    by-user record carries the `events` record's timestamp, not the forward's."""
    record = {"user_id": "u", "item_id": "i", "ts": 1.0}
    topics = fake_topics()
    asyncio.run(route_event(Message(json.dumps(record).encode(), timestamp=1234.5), topics))
    assert len(sent(topics.by_user)) == 1
    assert topics.by_user.timestamps == [1234.5]  # type: ignore[attr-defined]
