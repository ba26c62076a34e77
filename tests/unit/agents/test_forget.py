"""Forget records: routed by user, applied between the user's events by the recommend
agent (state deleted, trainer told), their failures dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import ray.exceptions as rex
from pydantic import ValidationError

from streams.events import _internal, route_event
from streams.remote import runs
from streams.schemas import DeadLetter, KeyedForget
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
from workers.recommend_io import UserState


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
