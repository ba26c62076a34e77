"""Event agents: validate, serve where the user's state lives, else repartition by user.

    events ──ingest, a micro-batch at a time──┬─ keyed by user_id, on its partition ──┐
                                              ├─ other keys ──► <app>-events-by-user  │
                                              └─ invalid ──► dead-letters             │
    by-user ──recommend, a micro-batch at a time─────────────────────────────────────┤
              served (`serve_records`) ──► RecommenderActor ◄─────────────────────────┘
              ──► users table (changelog), recommendations, trainer samples
    forget records ──► `streams.forget` (state tombstone, samples dropped), in their place
              among the batch's events

An event whose Kafka key is its ``user_id`` and that sits on the partition the producer's
partitioner gives that key (murmur2, as the users table's changelog) is already where its
user's state is: Faust co-partitions topics of the same partition count, so the worker
that owns ``events`` partition p owns the by-user partition p and the table's. It is
served by the ingest agent itself, without the by-user hop (a produce, a fetch and a JSON
round trip). Any other key takes the hop (`KafkaConfig.serve_in_place` off: every event).
The two agents of a worker serve one batch at a time (a shared lock), so a user whose
producers key events both ways never has two batches' writes race on their state; such
a user's events may then be served out of their produce order, across the two paths.

The agents (`streams.agents`) are thin loops; what they do with a record or a batch is
`route_event`, `recommend_batch` and `serve_records`, which tests drive in-process with
fake topics and actors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from functools import partial
from typing import Any

from streams import deadletters, metrics
from streams.app import Topics, partition_of
from streams.delivery import Outbox
from streams.forget import forget_users
from streams.remote import InputFailed, call_until_done, describe, in_halves, runs
from streams.schemas import (
    DEFAULT_LIMITS,
    Event,
    InvalidRecord,
    KeyedEvent,
    KeyedForget,
    SourceRef,
    decode_events_record,
    dumps,
    key_text,
    recommendation_json,
)
from streams.settings import LimitsConfig, RetryConfig
from streams.trainer_feed import TrainerFeed
from streams.user_state import StateFormatError, decode_state, encode_state
from workers.actors import Actors
from workers.recommend_io import EventIn, Events, RecResult, UserState, UserStates

log = logging.getLogger(__name__)


#: (events message, its user id) -> whether the record is served where it landed.
ServedHere = Callable[[Any, str], bool]


def read_record(message: Any, limits: LimitsConfig) -> KeyedEvent | KeyedForget:
    """One `events` record (faust Message) -> the KeyedEvent or KeyedForget it holds, with
    where it came from; InvalidRecord when the record breaks the contract or ``limits``."""
    record = decode_events_record(
        message.value,
        default_event_id=f"{message.topic}-{message.partition}-{message.offset}",
        limits=limits,
    )
    source = SourceRef(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key_text(message.key),
        timestamp=message.timestamp,
    )
    if isinstance(record, Event):
        return KeyedEvent(event=record, source=source)
    return KeyedForget(forget=record, source=source)


def keyed_record(message: Any, limits: LimitsConfig) -> tuple[bytes, bytes]:
    """One `events` record -> (user id, KeyedEvent or KeyedForget JSON) for the by-user
    topic, co-partitioned with the users table; InvalidRecord as `read_record`."""
    record = read_record(message, limits)
    return _user_of(record).encode(), dumps(record)


def _user_of(record: KeyedEvent | KeyedForget) -> str:
    return record.event.user_id if isinstance(record, KeyedEvent) else record.forget.user_id


def served_in_place(app: Any, partitions: int) -> ServedHere:
    """Whether an `events` record already sits where its user's state is: keyed by the
    user id, on the partition murmur2 gives that key, in a topic of the users table's
    partition count (so Faust assigns it with the by-user and changelog partitions)."""

    def here(message: Any, user_id: str) -> bool:
        key = user_id.encode()
        return bool(
            message.key == key
            and app.consumer.topic_partitions(message.topic) == partitions
            and message.partition == partition_of(key, partitions)
        )

    return here


async def route_event(
    message: Any,
    topics: Topics,
    limits: LimitsConfig = DEFAULT_LIMITS,
    here: ServedHere | None = None,
) -> KeyedEvent | KeyedForget | None:
    """One `events` record (faust Message) -> the record to serve in this worker (when
    ``here`` says it landed where its user's state is), or None once it was sent to the
    by-user topic, keyed by user, or dead-lettered with the reason.

    Whatever the record holds, it ends one way or the other: an error of the worker
    code on it is its dead letter (the reason names the exception), never the agent's
    end. Only a failed send (the broker's) propagates; the agents send through a batch's
    `streams.delivery.Receipts`, where a transient one is kept and sent again.
    """
    try:
        record = read_record(message, limits)
        user_id = _user_of(record)
        if here is not None and here(message, user_id):
            return record
        value = dumps(record)
    except InvalidRecord as exc:
        letter = deadletters.from_message(message, str(exc))
        await deadletters.send(topics.dead_letters, letter, deadletters.INVALID)
        return None
    except Exception as exc:
        letter = deadletters.from_message(message, f"routing failed: {describe(exc)}")
        await deadletters.send(topics.dead_letters, letter, deadletters.FAILED)
        return None
    # The event's produce timestamp goes with it, so the recommend agent times its
    # stages from when the event was produced, not when it was forwarded.
    await topics.by_user.send(key=user_id.encode(), value=value, timestamp=message.timestamp)
    return None


def recommendation(keyed: KeyedEvent, result: RecResult, now: float) -> tuple[bytes, bytes, float]:
    """(key, value, latency ms) of the `recommendations` record for ``keyed``'s event."""
    event = keyed.event
    latency_ms = max(0.0, (now - keyed.source.timestamp) * 1000.0)
    value = recommendation_json(
        user_id=event.user_id,
        event_id=result.event_id,
        scenario=event.scenario,
        items=result.items,
        model_version=result.model_version,
        ts=now,
        latency_ms=latency_ms,
    )
    return event.user_id.encode(), value, latency_ms


def event_in(keyed: KeyedEvent) -> EventIn:
    """The part of a validated event the recommender reads."""
    e = keyed.event
    return EventIn(
        event_id=e.event_id or "",
        user_id=e.user_id,
        item_id=e.item_id,
        scenario=e.scenario,
        weight=e.weight,
        text=e.text,
        learn=e.learn,
    )


async def _dead(topics: Topics, keyed: Sequence[KeyedEvent], reason: str, kind: str) -> None:
    for k in keyed:
        letter = deadletters.from_source(k.source, reason, k.event.model_dump_json())
        await deadletters.send(topics.dead_letters, letter, kind)


async def recommend_batch(
    messages: Sequence[Any],
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
    outbox: Outbox | None = None,
    feed: TrainerFeed | None = None,
) -> None:
    """A micro-batch of by-user messages -> new user states in ``users`` (the Faust
    table, keyed by the UTF-8 user id), one recommendation per event, samples to the
    trainer; a forget record removes its user's state and samples (`streams.forget`).

    Every message ends as a recommendation (a forget: its user forgotten) or a dead
    letter with its reason: a message the ingest agent did not write, a user whose
    stored state cannot be read, or an event the recommender fails on (found by serving
    the batch in halves). Failures of Ray or the store are waited out
    (`streams.remote.call_until_done`). The batch is served as `serve_records`.
    """
    # [faust Message] -> [KeyedEvent | KeyedForget] (internal topic, by the ingest agent)
    records: list[KeyedEvent | KeyedForget] = []
    for message in messages:
        try:
            records.append(_internal(message.value))
        except Exception as exc:  # not written by a compatible ingest agent
            reason = f"bad internal record: {describe(exc)}"
            letter = deadletters.from_message(message, reason)
            await deadletters.send(topics.dead_letters, letter, deadletters.INTERNAL)
    await serve_records(
        records, topics=topics, users=users, actors=actors, retry=retry, outbox=outbox, feed=feed
    )


async def serve_records(
    records: Sequence[KeyedEvent | KeyedForget],
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
    outbox: Outbox | None = None,
    feed: TrainerFeed | None = None,
) -> None:
    """Validated records of users whose state this worker owns -> recommendations and
    states, or forgotten users, or dead letters; served in runs split at forget records,
    so a forget comes after its user's earlier events and before later ones.

    The recommendations are produced before this returns, or, given an ``outbox``, left
    in it for the caller to produce (after the states are written). Samples go to the
    trainer through ``feed`` (`streams.trainer_feed`: in the background), or, without
    one, are handed over before this returns."""
    owed = Outbox(retry) if outbox is None else outbox
    feeding = feed if feed is not None or actors.trainer is None else TrainerFeed(actors.trainer)
    for run in runs(records, type):
        if isinstance(run[0], KeyedForget):
            forgets = [r for r in run if isinstance(r, KeyedForget)]
            await forget_users(
                forgets, topics=topics, users=users, actors=actors, retry=retry, feed=feeding
            )
        else:
            keyed = [r for r in run if isinstance(r, KeyedEvent)]
            await _recommend_events(
                keyed, owed, feeding, topics=topics, users=users, actors=actors, retry=retry
            )
    if outbox is None:
        await owed.send(topics)
    if feed is None and feeding is not None:
        await feeding.drain()


def _internal(value: bytes) -> KeyedEvent | KeyedForget:
    """A by-user record -> what it holds; neither: the KeyedEvent's ValidationError (the
    reason a broken event record gets)."""
    try:
        return KeyedEvent.model_validate_json(value)
    except ValueError as exc:
        try:
            return KeyedForget.model_validate_json(value)
        except ValueError:
            raise exc from None


async def _recommend_events(
    keyed: list[KeyedEvent],
    outbox: Outbox,
    feed: TrainerFeed | None,
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
) -> None:
    """Validated events -> states, recommendations, samples, or dead letters."""
    # {user_id: UserState | None}, decoded once per batch and kept current as parts of
    # the batch are served; users whose stored state is unreadable go to dead letters.
    states: dict[str, UserState | None] = {}
    unreadable: dict[str, str] = {}
    for uid in dict.fromkeys(k.event.user_id for k in keyed):
        try:
            states[uid] = decode_state(uid, users.get(uid.encode()))
        except StateFormatError as exc:
            unreadable[uid] = f"unreadable user state: {exc}"
        except Exception as exc:  # a stored value no format foresaw
            unreadable[uid] = f"unreadable user state: {describe(exc)}"
    for uid, reason in unreadable.items():
        mine = [k for k in keyed if k.event.user_id == uid]
        await _dead(topics, mine, reason, deadletters.UNREADABLE_STATE)
    keyed = [k for k in keyed if k.event.user_id not in unreadable]

    async def serve(part: Sequence[KeyedEvent]) -> None:
        await _serve(
            part, states, outbox, feed, topics=topics, users=users, actors=actors, retry=retry
        )

    async def reject(part: Sequence[KeyedEvent], exc: BaseException) -> None:
        await _dead(topics, part, f"recommendation failed: {describe(exc)}", deadletters.FAILED)

    if keyed:
        await in_halves(keyed, serve, reject)


async def _serve(
    keyed: Sequence[KeyedEvent],
    states: dict[str, UserState | None],
    outbox: Outbox,
    feed: TrainerFeed | None,
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
) -> None:
    """Events -> recommender -> states, samples, and recommendations into ``outbox``;
    writes nothing if the recommender raises (so the caller can serve the events again
    in halves).

    ``states`` holds the current state of every user of ``keyed`` and is updated."""
    inputs = Events(event_in(k) for k in keyed)
    mine = UserStates({uid: states[uid] for uid in dict.fromkeys(k.event.user_id for k in keyed)})
    # ([EventIn], {user_id: UserState | None}) -> Batch(results, new states, samples)
    submitted = time.time()
    out = await call_until_done(
        partial(actors.recommender.recommend.remote, inputs, mine), retry, what="recommend"
    )
    now = time.time()
    metrics.observe_recommend_parts(submitted, out.ran, now)
    try:  # every output encoded before any is written: a failure here is the input's
        stored = {uid: encode_state(state, seen=now) for uid, state in out.states.items()}
        sends = [recommendation(k, r, now) for k, r in zip(keyed, out.results, strict=True)]
    except Exception as exc:
        raise InputFailed(exc) from exc
    for uid, state in out.states.items():
        states[uid] = state
        users[uid.encode()] = stored[uid]
    outbox.records += sends
    if feed is not None and out.samples:  # a later forget drains the feed first
        await feed.add(out.samples)
