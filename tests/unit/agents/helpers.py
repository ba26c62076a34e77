"""Fake topics and actors for the agents' batch handlers, in-process.

The Faust agents are thin loops over `route_event`, `recommend_batch` and `index_batch`;
the tests of this package drive the handlers with real Kafka-shaped messages and a
recommender (or an encoder) that raises, so the error branches run without a broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray.exceptions as rex

from streams import metrics
from streams.app import Topics
from streams.events import recommend_batch, route_event
from streams.settings import RetryConfig
from workers.actors import Actors
from workers.recommend_io import Batch, EventIn, RecResult, UserState
from workers.training import Sample

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
    timestamps: list[float | None] = field(default_factory=list)  # of each sent record
    fail: Exception | None = None

    async def send(
        self, *, key: Any, value: bytes, timestamp: float | None = None
    ) -> asyncio.Future[None]:
        """Queued and delivered at once (faust's ``send`` returns the delivery's future)."""
        if self.fail is not None:
            raise self.fail
        self.sent.append((key, value))
        self.timestamps.append(timestamp)
        return delivered()

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.sent]


def delivered(error: BaseException | None = None) -> asyncio.Future[None]:
    """A delivery's future, done: delivered, or failed with ``error``."""
    delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        delivery.set_result(None)
    else:
        delivery.set_exception(error)
    return delivery


@dataclass
class FlakyTopic:
    """Fails the sends whose (0-based) attempt number is in ``failing`` (raised while
    queueing) or in ``undelivered`` (the delivery's future fails); keeps (key,
    timestamp) of what went."""

    failing: dict[int, Exception] = field(default_factory=dict)
    undelivered: dict[int, Exception] = field(default_factory=dict)
    sent: list[tuple[bytes | str, float | None]] = field(default_factory=list)
    attempts: int = 0

    async def send(
        self, *, key: bytes | str, value: bytes, timestamp: float | None = None
    ) -> asyncio.Future[None]:
        attempt, self.attempts = self.attempts, self.attempts + 1
        if attempt in self.failing:
            raise self.failing[attempt]
        if attempt in self.undelivered:
            return delivered(self.undelivered[attempt])
        self.sent.append((key, timestamp))
        return delivered()

    def keys(self) -> list[bytes | str]:
        return [key for key, _ in self.sent]


class NoChangelog:
    """A users table that wrote no changelog records (`streams.delivery.Changelog`)."""

    def take_unconfirmed(self) -> list[Any]:
        return []

    def resend(self, key: Any) -> asyncio.Future[None]:
        raise AssertionError("nothing was written, so nothing is written again")


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


def sent_again(what: str) -> float:
    """How many records the worker has sent again for ``what`` (`metrics.SENT_AGAIN`)."""
    return float(metrics.SENT_AGAIN.labels(what=what)._value.get())
