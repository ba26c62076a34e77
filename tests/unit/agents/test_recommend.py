"""The recommend agent (`recommend_batch`): a batch served and its states stored, a
failing cluster waited out, a poison record found in halves and dead-lettered alone, a
bad internal record, an unreadable stored state, an output that cannot be stored."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import ray.exceptions as rex
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)

from streams.remote import is_transient
from streams.schemas import DeadLetter, Recommendation
from streams.settings import RetryConfig
from streams.user_state import decode_state, encode_state
from tests.unit.agents.helpers import (
    FakeRecommender,
    Message,
    Remote,
    by_user,
    fake_topics,
    run_batch,
    sent,
)
from workers.recommend_io import Batch, EventIn, UserState


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
    """The broker refuses the record (not a transient failure, which the outbox waits
    out: tests/unit/agents/test_outbox.py): the batch fails whole, no dead letter."""
    topics = fake_topics()
    topics.recommendations.fail = MessageSizeTooLargeError()  # type: ignore[attr-defined]
    rec = FakeRecommender()
    with pytest.raises(MessageSizeTooLargeError):
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
        (KafkaConnectionError(), True),  # aiokafka's retriable errors
        (NotLeaderForPartitionError(), True),
        (KafkaTimeoutError(), True),
        (MessageSizeTooLargeError(), False),
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


def test_a_trainer_that_refuses_samples_does_not_lose_recommendations() -> None:
    trainer = type("T", (), {"add": Remote(lambda samples: 1 / 0)})()
    topics = run_batch([by_user("e1")], {}, FakeRecommender(), trainer=trainer)
    assert [v["event_id"] for v in sent(topics.recommendations)] == ["e1"]
    assert sent(topics.dead_letters) == []


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
