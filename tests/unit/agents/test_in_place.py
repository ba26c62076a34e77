"""Events served where they land (`served_in_place`, `route_event` with ``here``): an
event keyed by its user id, on that key's murmur2 partition of a topic with the users
table's partition count, skips the by-user hop; anything else takes it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.app import partition_of
from streams.delivery import Outbox
from streams.events import route_event, serve_records, served_in_place
from streams.schemas import KeyedEvent, KeyedForget, Recommendation
from streams.user_state import decode_state
from tests.unit.agents.helpers import FAST, FakeRecommender, Message, actors, fake_topics, sent

PARTITIONS = 4


@dataclass
class FakeConsumer:
    counts: dict[str, int] = field(default_factory=lambda: {"events": PARTITIONS})

    def topic_partitions(self, topic: str) -> int | None:
        return self.counts.get(topic)


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)


def event_message(user: str, *, key: bytes | None = None, partition: int | None = None) -> Message:
    value = {"event_id": f"e-{user}", "user_id": user, "item_id": "i1", "ts": 1.0}
    key = user.encode() if key is None else key
    if partition is None:
        partition = partition_of(user.encode(), PARTITIONS)
    return Message(json.dumps(value).encode(), key=key, partition=partition)


def test_an_event_keyed_by_its_user_on_its_partition_is_served_here() -> None:
    here = served_in_place(FakeApp(), PARTITIONS)
    assert here(event_message("u7"), "u7")


@pytest.mark.parametrize(
    ("message", "counts"),
    [
        (event_message("u7", key=b"someone-else"), {"events": PARTITIONS}),
        (event_message("u7", key=b""), {"events": PARTITIONS}),
        (
            event_message("u7", partition=(partition_of(b"u7", PARTITIONS) + 1) % PARTITIONS),
            {"events": PARTITIONS},
        ),  # a custom partitioner put it elsewhere
        (event_message("u7"), {"events": PARTITIONS * 2}),  # not co-partitioned
        (event_message("u7"), {}),  # no metadata yet
    ],
    ids=["other-key", "empty-key", "other-partition", "other-count", "unknown-count"],
)
def test_anything_else_takes_the_by_user_hop(message: Message, counts: dict[str, int]) -> None:
    here = served_in_place(FakeApp(FakeConsumer(counts)), PARTITIONS)
    assert not here(message, "u7")
    topics = fake_topics()
    assert asyncio.run(route_event(message, topics, here=here)) is None
    [(key, value)] = topics.by_user.sent  # type: ignore[attr-defined]
    assert key == b"u7" and KeyedEvent.model_validate_json(value).event.user_id == "u7"


def test_a_record_served_here_is_returned_not_sent() -> None:
    here = served_in_place(FakeApp(), PARTITIONS)
    topics = fake_topics()
    message = event_message("u7")
    record = asyncio.run(route_event(message, topics, here=here))
    assert isinstance(record, KeyedEvent)
    assert (record.event.user_id, record.source.partition) == ("u7", message.partition)
    assert topics.by_user.sent == [] and topics.dead_letters.sent == []  # type: ignore[attr-defined]


def test_a_forget_record_keyed_by_its_user_is_served_here_too() -> None:
    here = served_in_place(FakeApp(), PARTITIONS)
    value = json.dumps({"type": "forget", "user_id": "u7"}).encode()
    message = Message(value, key=b"u7", partition=partition_of(b"u7", PARTITIONS))
    record = asyncio.run(route_event(message, fake_topics(), here=here))
    assert isinstance(record, KeyedForget) and record.forget.user_id == "u7"


def test_an_invalid_record_is_dead_lettered_whatever_its_key() -> None:
    here = served_in_place(FakeApp(), PARTITIONS)
    topics = fake_topics()
    message = Message(b'{"user_id": "u7"}', key=b"u7", partition=partition_of(b"u7", PARTITIONS))
    assert asyncio.run(route_event(message, topics, here=here)) is None
    [letter] = sent(topics.dead_letters)
    assert "item_id" in letter["error"] and topics.by_user.sent == []  # type: ignore[attr-defined]


def test_records_served_here_give_recommendations_and_states() -> None:
    here = served_in_place(FakeApp(), PARTITIONS)
    topics = fake_topics()
    records: list[Any] = []
    for user in ("u1", "u2", "u1"):
        record = asyncio.run(route_event(event_message(user), topics, here=here))
        records.append(record)
    users: dict[bytes, Any] = {}
    both = actors(FakeRecommender())
    asyncio.run(serve_records(records, topics=topics, users=users, actors=both, retry=FAST))
    recs = [Recommendation.model_validate(v) for v in sent(topics.recommendations)]
    assert [r.user_id for r in recs] == ["u1", "u2", "u1"]
    state = decode_state("u1", users[b"u1"])
    assert state is not None and state.events == 2


def test_given_an_outbox_the_states_are_written_and_the_recommendations_left_in_it() -> None:
    # A batch in flight (`streams.agents`) produces its recommendations after it leaves
    # the serving lock: when serve_records returns, the states are written, nothing sent.
    here = served_in_place(FakeApp(), PARTITIONS)
    topics = fake_topics()
    records = [asyncio.run(route_event(event_message(u), topics, here=here)) for u in ("u1", "u2")]
    users: dict[bytes, Any] = {}
    outbox = Outbox(FAST)
    both = actors(FakeRecommender())
    asyncio.run(
        serve_records(records, topics=topics, users=users, actors=both, retry=FAST, outbox=outbox)
    )
    assert set(users) == {b"u1", b"u2"} and sent(topics.recommendations) == []
    asyncio.run(outbox.send(topics))
    recs = [Recommendation.model_validate(v) for v in sent(topics.recommendations)]
    assert [r.user_id for r in recs] == ["u1", "u2"] and not outbox.records
