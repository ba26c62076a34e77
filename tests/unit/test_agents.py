"""The agents' batch handlers, in-process: fake topics and actors, real records.

The Faust agents are thin loops over `route_event`, `recommend_batch` and `index_batch`;
these tests drive the handlers with real Kafka-shaped messages and a recommender (or an
encoder) that raises, so the error branches run without a broker: Ray calls that fail
for a while (waited out) or for one record (found in halves, dead-lettered alone), a bad
internal record, an unreadable stored state, an oversized dead letter, a dead letter or
a recommendation that cannot be sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import ray.exceptions as rex
from pydantic import ValidationError

from streams.app import Topics
from streams.catalog import index_batch
from streams.events import _internal, recommend_batch, route_event
from streams.remote import is_transient, runs
from streams.schemas import (
    ERROR_LIMIT,
    KEY_LIMIT,
    RAW_LIMIT,
    DeadLetter,
    KeyedEvent,
    KeyedForget,
    Recommendation,
    decode_state,
    encode_state,
)
from streams.settings import LimitsConfig, RetryConfig
from workers.actors import Actors
from workers.recommender import Batch, EventIn, RecResult, UserState
from workers.training import Sample

PRODUCER_LIMIT = 1_048_576  # Kafka's default max.request.size / message.max.bytes
FAST = RetryConfig(backoff=0.001, max_backoff=0.01)


@dataclass
class Message:
    """The fields of a faust Message the handlers read."""

    value: bytes | None
    key: bytes | None = b"u1"
    topic: str = "events"
    partition: int = 0
    offset: int = 0
    timestamp: float = 1000.0


@dataclass
class FakeTopic:
    sent: list[tuple[Any, bytes]] = field(default_factory=list)
    fail: Exception | None = None

    async def send(self, *, key: Any, value: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((key, value))

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.sent]


def fake_topics() -> Topics:
    return Topics(
        items=FakeTopic(),
        events=FakeTopic(),
        by_user=FakeTopic(),
        recommendations=FakeTopic(),
        dead_letters=FakeTopic(),
    )


def sent(topic: Any) -> list[dict[str, Any]]:
    assert isinstance(topic, FakeTopic)
    return topic.values()


class Remote:
    """``actor.method.remote(*args)`` -> an awaitable, like a Ray ObjectRef (refs given as
    arguments are resolved first, as Ray does)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1

        async def run() -> Any:
            resolved = [await a if asyncio.iscoroutine(a) else a for a in args]
            return self.fn(*resolved)

        return run()


class FakeRecommender:
    """Serves every event with one fixed item; raises ``error`` while ``failures`` > 0
    (an actor that died, by default), and a ValueError for any batch with ``poison``."""

    def __init__(
        self, failures: int = 0, error: Exception | None = None, poison: str | None = None
    ) -> None:
        self.failures = failures
        self.error = error or rex.ActorDiedError()
        self.poison = poison
        self.recommend = Remote(self._recommend)
        self.seen_states: list[dict[str, UserState | None]] = []

    def _recommend(self, events: list[EventIn], states: dict[str, UserState | None]) -> Batch:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        if any(e.item_id == self.poison for e in events):
            raise ValueError(f"cannot serve {self.poison}")
        self.seen_states.append(dict(states))
        out: dict[str, UserState] = {}
        for e in events:
            state = out.get(e.user_id) or (states[e.user_id] or UserState()).copy()
            state.remember(e.item_id, e.weight, 200)
            state.events += 1
            out[e.user_id] = state
        results = [RecResult(e.event_id, e.user_id, [("x", 0.5)], 0) for e in events]
        return Batch(results, out, [Sample(("a",), "b", "default")])


def actors(
    recommender: Any = None, trainer: Any = None, encoder: Any = None, catalog: Any = None
) -> Actors:
    return Actors(encoder=encoder, catalog=catalog, recommender=recommender, trainer=trainer)


def by_user(event_id: str, user: str = "u1", item: str = "i1", offset: int = 0) -> Message:
    """A by-user record as the ingest agent writes it."""
    value = {"event_id": event_id, "user_id": user, "item_id": item, "ts": 1.0}
    route = fake_topics()
    asyncio.run(route_event(Message(json.dumps(value).encode(), offset=offset), route))
    ((_, keyed),) = route.by_user.sent  # type: ignore[attr-defined]
    return Message(keyed, key=user.encode(), topic="app-events-by-user", offset=offset)


def run_batch(
    messages: list[Message],
    users: dict[bytes, Any],
    recommender: Any,
    retry: RetryConfig = FAST,
    topics: Topics | None = None,
    **kw: Any,
) -> Topics:
    topics = topics or fake_topics()
    both = actors(recommender, **kw)
    asyncio.run(recommend_batch(messages, topics=topics, users=users, actors=both, retry=retry))
    return topics


def test_a_batch_is_served_and_its_states_stored() -> None:
    users: dict[bytes, Any] = {}
    rec = FakeRecommender()
    topics = run_batch([by_user("e1"), by_user("e2", "u2"), by_user("e3")], users, rec)
    recs = [Recommendation.model_validate(v) for v in sent(topics.recommendations)]
    assert [r.event_id for r in recs] == ["e1", "e2", "e3"]
    assert sent(topics.dead_letters) == []
    state = decode_state("u1", users[b"u1"])
    assert state is not None and state.events == 2  # stored through the codec


def test_a_failing_cluster_is_waited_out_not_dead_lettered() -> None:
    rec = FakeRecommender(failures=12)  # an actor that died, then came back
    topics = run_batch([by_user("e1"), by_user("e2")], {}, rec)
    assert rec.recommend.calls == 13
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e2"]
    assert sent(topics.dead_letters) == []


def test_a_record_the_recommender_fails_on_is_found_and_dead_lettered_alone() -> None:
    users: dict[bytes, Any] = {}
    rec = FakeRecommender(poison="bad-item")
    batch = [
        by_user("e1", offset=1),
        by_user("e2", "u2", offset=2),
        by_user("e3", "u3", item="bad-item", offset=3),
        by_user("e4", offset=4),
        by_user("e5", "u2", offset=5),
    ]
    topics = run_batch(batch, users, rec)
    assert sorted(v["event_id"] for v in sent(topics.recommendations)) == ["e1", "e2", "e4", "e5"]
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 3
    assert letter.error == "recommendation failed: ValueError: cannot serve bad-item"
    assert json.loads(letter.raw)["event_id"] == "e3"  # the event, for a replay
    state = decode_state("u1", users[b"u1"])
    assert state is not None and state.events == 2 and b"u3" not in users  # order kept


def test_a_failure_lasting_past_give_up_after_dead_letters_the_batch_with_the_reason() -> None:
    rec = FakeRecommender(failures=10**6, error=rex.GetTimeoutError("no answer"))
    bounded = RetryConfig(backoff=0.01, max_backoff=0.02, give_up_after=0.2)
    topics = run_batch([by_user("e1", offset=5), by_user("e2", "u2", offset=6)], {}, rec, bounded)
    assert sent(topics.recommendations) == []
    letters = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert [d.offset for d in letters] == [5, 6]
    assert all(d.error.startswith("recommendation failed: GaveUp: recommend") for d in letters)


def test_a_recommendation_that_cannot_be_sent_fails_the_batch_and_is_not_bisected() -> None:
    topics = fake_topics()
    topics.recommendations.fail = ConnectionError("broker gone")  # type: ignore[attr-defined]
    rec = FakeRecommender()
    with pytest.raises(ConnectionError):
        run_batch([by_user("e1"), by_user("e2")], {}, rec, topics=topics)
    assert rec.recommend.calls == 1 and sent(topics.dead_letters) == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (rex.ActorDiedError(), True),
        (rex.ActorUnavailableError("restarting", None), True),
        (rex.GetTimeoutError(), True),
        (rex.RayTaskError("recommend", "tb", rex.ActorDiedError()), True),  # died under it
        (rex.RayTaskError("recommend", "tb", ConnectionError("store")), True),
        (rex.RayTaskError("recommend", "tb", ValueError("bad")), False),
        (ConnectionError("broker"), True),
        (ValueError("bad"), False),
        (KeyError("x"), False),
    ],
)
def test_what_counts_as_the_cluster_s_fault(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_bad_internal_record_is_dead_lettered_and_its_batch_still_served() -> None:
    bad = Message(b'{"not": "a keyed event"}', topic="app-events-by-user", offset=3)
    topics = run_batch([by_user("e1"), bad, by_user("e2")], {}, FakeRecommender())
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e2"]
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 3 and letter.error.startswith("bad internal record:")


def test_an_unreadable_stored_state_dead_letters_that_user_s_events_only() -> None:
    users: dict[bytes, Any] = {b"u1": {"format": 99}, b"u2": None}
    rec = FakeRecommender()
    topics = run_batch([by_user("e1"), by_user("e2", "u2"), by_user("e3")], users, rec)
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e2"]
    letters = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert [json.loads(d.raw)["event_id"] for d in letters] == ["e1", "e3"]
    assert all("format 99" in d.error for d in letters)
    assert users[b"u1"] == {"format": 99}  # left as it was, never replaced by defaults
    assert "u1" not in rec.seen_states[0]


def test_stored_states_reach_the_recommender_typed() -> None:
    state = UserState(history=["a"], weights=[2.0], vector=np.ones(4, np.float32))
    stored = encode_state(state, seen=1.0)
    rec = FakeRecommender()
    run_batch([by_user("e1")], {b"u1": stored}, rec)
    state = rec.seen_states[0]["u1"]
    assert isinstance(state, UserState) and state.weights == [2.0]


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


def test_a_trainer_that_refuses_samples_does_not_lose_recommendations() -> None:
    trainer = type("T", (), {"add": Remote(lambda samples: 1 / 0)})()
    topics = run_batch([by_user("e1")], {}, FakeRecommender(), trainer=trainer)
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1"]
    assert sent(topics.dead_letters) == []


def test_an_indexing_failure_dead_letters_the_items_and_bad_items_go_alone() -> None:
    dead = FakeTopic()
    encoder = type("E", (), {"encode": Remote(lambda texts: 1 / 0)})()
    catalog = type("C", (), {"index": Remote(lambda items, vectors: len(items))})()
    good = Message(json.dumps({"item_id": "i1", "text": "a film"}).encode(), topic="items")
    bad = Message(b'{"item_id": "i2"}', topic="items", offset=1)
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch([good, bad], dead_letters=dead, actors=both, retry=FAST))
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error) for d in letters] == [
        (1, "text: Field required"),
        (0, "indexing failed: ZeroDivisionError: division by zero"),
    ]
    assert encoder.encode.calls == 1  # the code's own error: not retried, the item is alone


def test_keyed_event_round_trip_is_what_the_recommend_agent_reads() -> None:
    keyed = KeyedEvent.model_validate_json(by_user("e7", "u9").value or b"")
    assert (keyed.event.event_id, keyed.event.user_id, keyed.source.topic) == ("e7", "u9", "events")


# --- hostile input: every record ends as a result or a dead letter --------------------


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


def test_a_nested_internal_record_is_dead_lettered_and_the_batch_served() -> None:
    deep = b'{"event": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    bad = Message(deep, topic="app-events-by-user", offset=3)
    topics = run_batch([by_user("e1"), bad, by_user("e2")], {}, FakeRecommender())
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e2"]
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 3 and letter.error.startswith("bad internal record: ")


def test_a_state_the_codec_fails_on_dead_letters_that_user_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = decode_state

    def flaky(uid: str, value: Any) -> UserState | None:
        if uid == "u2":
            raise TypeError("no format foresaw this")
        return real(uid, value)

    monkeypatch.setattr("streams.events.decode_state", flaky)
    topics = run_batch([by_user("e1"), by_user("e2", "u2"), by_user("e3")], {}, FakeRecommender())
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e3"]
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.error == "unreadable user state: TypeError: no format foresaw this"


class UnencodableRecommender(FakeRecommender):
    """Serves every event, but the state it returns for ``user`` cannot be stored."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user

    def _recommend(self, events: list[EventIn], states: dict[str, UserState | None]) -> Batch:
        batch = super()._recommend(events, states)
        if self.user in batch.states:
            batch.states[self.user].weights = ["not a number"]  # type: ignore[list-item]
        return batch


def test_an_output_that_cannot_be_encoded_is_found_and_dead_lettered_alone() -> None:
    users: dict[bytes, Any] = {}
    batch = [by_user("e1", offset=1), by_user("e2", "bad", offset=2), by_user("e3", offset=3)]
    topics = run_batch(batch, users, UnencodableRecommender("bad"))
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e3"]
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 2 and letter.error.startswith("recommendation failed: ValueError")
    assert set(users) == {b"u1"}  # nothing of the failed part was written


def test_an_item_the_decoding_code_fails_on_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams import catalog as catalog_agent

    real = catalog_agent.decode_item

    def flaky(raw: Any, **kwargs: Any) -> Any:
        if b"boom" in raw:
            raise MemoryError("too big")
        return real(raw, **kwargs)

    monkeypatch.setattr(catalog_agent, "decode_item", flaky)
    dead = FakeTopic()
    indexed: list[str] = []
    encoder = type("E", (), {"encode": Remote(lambda texts: [[0.0]] * len(texts))})()
    index = Remote(lambda items, vectors: indexed.extend(i.item_id for i in items))
    catalog = type("C", (), {"index": index})()
    msgs = [
        Message(json.dumps({"item_id": "i1", "text": "a"}).encode(), topic="items"),
        Message(b'{"item_id": "boom", "text": "b"}', topic="items", offset=1),
        Message(json.dumps({"item_id": "i3", "text": "c" * 20_000}).encode(), offset=2),
        Message(json.dumps({"item_id": "i4", "text": "d", "ts": 1e300}).encode(), offset=3),
    ]
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=both, retry=FAST))
    assert indexed == ["i1", "i3"]
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error.split(":")[0]) for d in letters] == [
        (1, "decoding failed"),
        (3, "ts must be epoch seconds in [0, 4102444800], got 1e+300"),
    ]
    assert letters[0].error == "decoding failed: MemoryError: too big"


# --- forgetting a user, deleting an item -------------------------------------------


def forget_record(user: str, offset: int = 0) -> Message:
    """A forget record as the ingest agent writes it to the by-user topic."""
    value = {"type": "forget", "user_id": user}
    route = fake_topics()
    asyncio.run(route_event(Message(json.dumps(value).encode(), offset=offset), route))
    ((key, keyed),) = route.by_user.sent  # type: ignore[attr-defined]
    assert key == user.encode()  # routed like the user's events
    return Message(keyed, key=key, topic="app-events-by-user", offset=offset)


class FakeTrainer:
    """Records what reaches the trainer, in order; ``forget`` raises ``error`` if set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.error = error
        self.add = Remote(lambda samples: self.calls.append(("add", len(samples))))
        self.forget = Remote(self._forget)

    def _forget(self, user_ids: list[str]) -> int:
        self.calls.append(("forget", user_ids))
        if self.error is not None:
            raise self.error
        return 7


def test_a_forget_record_is_routed_by_user_with_its_source() -> None:
    keyed = KeyedForget.model_validate_json(forget_record("u9", offset=4).value or b"")
    assert keyed.forget.user_id == "u9" and keyed.forget.event_id == "events-0-4"
    assert keyed.source.offset == 4


def test_a_forget_removes_the_state_between_the_user_s_events_and_tells_the_trainer() -> None:
    users: dict[bytes, Any] = {}
    trainer = FakeTrainer()
    batch = [
        by_user("e1"),
        by_user("e2", "u2"),
        by_user("e3"),
        forget_record("u1", offset=9),
        by_user("e4"),
    ]
    topics = run_batch(batch, users, FakeRecommender(), trainer=trainer)
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1", "e2", "e3", "e4"]
    assert sent(topics.dead_letters) == []
    u1, u2 = decode_state("u1", users[b"u1"]), decode_state("u2", users[b"u2"])
    assert u1 is not None and u1.events == 1  # e4 only: a new user after the forget
    assert u2 is not None and u2.events == 1  # another user's state is untouched
    assert trainer.calls == [("add", 1), ("forget", ["u1"]), ("add", 1)]


def test_forgetting_deletes_the_table_entry_so_the_changelog_gets_a_tombstone() -> None:
    class Table(dict[bytes, Any]):
        deleted: list[bytes] = []  # noqa: RUF012 (one table per test)

        def __delitem__(self, key: bytes) -> None:
            self.deleted.append(key)
            super().__delitem__(key)

    users = Table({b"u1": encode_state(UserState(history=["a"], weights=[1.0]), seen=1.0)})
    topics = run_batch([forget_record("u1"), forget_record("nobody")], users, FakeRecommender())
    assert users.deleted == [b"u1"] and b"u1" not in users  # nothing to delete for nobody
    assert sent(topics.dead_letters) == [] and sent(topics.recommendations) == []


def test_a_forget_the_trainer_fails_on_is_dead_lettered_with_the_reason() -> None:
    users: dict[bytes, Any] = {b"u1": encode_state(UserState(), seen=1.0)}
    trainer = FakeTrainer(error=ValueError("no such thing"))
    topics = run_batch([forget_record("u1", offset=3)], users, FakeRecommender(), trainer=trainer)
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 3 and letter.error.startswith("forget incomplete (state removed")
    assert json.loads(letter.raw)["user_id"] == "u1" and users == {}


def test_a_forget_waits_out_a_trainer_that_is_down() -> None:
    trainer = FakeTrainer(error=rex.ActorDiedError())
    remote = trainer.forget
    remote.fn = lambda ids: (  # type: ignore[method-assign]
        trainer._forget(ids) if remote.calls < 4 else 0
    )
    topics = run_batch([forget_record("u1")], {}, FakeRecommender(), trainer=trainer)
    assert remote.calls == 4 and sent(topics.dead_letters) == []


def test_a_forget_record_without_a_user_is_dead_lettered() -> None:
    topics = fake_topics()
    asyncio.run(route_event(Message(b'{"type": "forget"}', offset=6), topics))
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 6 and letter.error == "user_id: Field required"


def item_message(item_id: str | None, value: dict[str, Any] | None, offset: int) -> Message:
    key = None if item_id is None else item_id.encode()
    raw = None if value is None else json.dumps(value).encode()
    return Message(raw, key=key, topic="items", offset=offset)


def test_an_item_tombstone_deletes_the_item_in_its_place_in_the_batch() -> None:
    calls: list[tuple[str, list[str]]] = []
    encoder = type("E", (), {"encode": Remote(lambda texts: [[0.0]] * len(texts))})()
    index = Remote(lambda items, vectors: calls.append(("index", [i.item_id for i in items])))
    delete = Remote(lambda ids: calls.append(("delete", list(ids))))
    catalog = type("C", (), {"index": index, "delete": delete})()
    msgs = [
        item_message("i1", {"item_id": "i1", "text": "a"}, 0),
        item_message("i2", {"item_id": "i2", "text": "b"}, 1),
        item_message("i1", None, 2),  # tombstone
        item_message(" i2 ", None, 3),  # keys are stripped as ids are
        item_message("i1", {"item_id": "i1", "text": "back"}, 4),
        item_message(None, None, 5),  # a tombstone of nothing
        item_message("i\x00", None, 6),
    ]
    dead = FakeTopic()
    both = actors(encoder=encoder, catalog=catalog)
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=both, retry=FAST))
    assert calls == [("index", ["i1", "i2"]), ("delete", ["i1", "i2"]), ("index", ["i1"])]
    letters = [DeadLetter.model_validate(v) for v in dead.values()]
    assert [(d.offset, d.error) for d in letters] == [
        (5, "empty value (null record) without a key: no item to delete"),
        (6, "item_id: control character U+0000 at 1"),
    ]


def test_a_delete_the_catalog_fails_on_is_dead_lettered_alone() -> None:
    def delete(ids: list[str]) -> int:
        if "bad" in ids:
            raise ValueError("cannot delete bad")
        return 0

    catalog = type("C", (), {"delete": Remote(delete)})()
    msgs = [item_message("ok", None, 0), item_message("bad", None, 1)]
    dead = FakeTopic()
    asyncio.run(index_batch(msgs, dead_letters=dead, actors=actors(catalog=catalog), retry=FAST))
    (letter,) = [DeadLetter.model_validate(v) for v in dead.values()]
    assert (letter.offset, letter.error) == (1, "delete failed: ValueError: cannot delete bad")


def test_a_batch_is_cut_into_runs_of_one_kind_in_order() -> None:
    assert runs([1, 3, 2, 4, 6, 5], lambda n: n % 2) == [[1, 3], [2, 4, 6], [5]]
    assert runs([], lambda n: n) == []


def test_a_broken_event_record_keeps_the_event_s_reason_beside_forget_records() -> None:
    bad = Message(b'{"event": {"user_id": "u1"}}', topic="app-events-by-user", offset=2)
    users: dict[bytes, Any] = {}
    topics = run_batch([forget_record("u1"), bad, by_user("e1")], users, FakeRecommender())
    (letter,) = [DeadLetter.model_validate(v) for v in sent(topics.dead_letters)]
    assert letter.offset == 2 and letter.error.startswith("bad internal record: ValidationError")
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1"]
    with pytest.raises(ValidationError) as info:
        _internal(bad.value or b"")
    assert info.value.title == "KeyedEvent"  # the event's own reason, not the forget's
