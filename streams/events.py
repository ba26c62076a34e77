"""Event agents: validate and repartition by user, then recommend in micro-batches.

    events ──ingest──► <app>-events-by-user (key user_id)        invalid ──► dead-letters
    by-user ──recommend, a micro-batch at a time──► RecommenderActor
            ──► users table (changelog), recommendations, trainer samples
    by-user forget records ──► `streams.forget` (state tombstone, samples dropped), in
            their place among the batch's events

The agents are thin loops; what they do with a record or a batch is `route_event` and
`recommend_batch`, which tests drive in-process with fake topics and actors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping, Sequence
from functools import partial
from typing import Any

from streams import deadletters, metrics
from streams.app import Pipeline, Topics
from streams.forget import forget_users
from streams.remote import InputFailed, call_until_done, describe, in_halves, runs
from streams.schemas import (
    DEFAULT_LIMITS,
    Event,
    InvalidRecord,
    KeyedEvent,
    KeyedForget,
    Recommendation,
    ScoredItem,
    SourceRef,
    StateFormatError,
    decode_events_record,
    decode_state,
    dumps,
    encode_state,
    key_text,
)
from streams.settings import LimitsConfig, RetryConfig
from workers.actors import Actors
from workers.recommender import EventIn, RecResult, UserState
from workers.training import Sample

log = logging.getLogger(__name__)


def keyed_record(message: Any, limits: LimitsConfig) -> tuple[bytes, bytes]:
    """One `events` record (faust Message) -> (user id, KeyedEvent or KeyedForget JSON)
    for the by-user topic; InvalidRecord when the record breaks the contract or ``limits``."""
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
    # (user_id, KeyedEvent | KeyedForget): co-partitioned with the users table
    if isinstance(record, Event):
        return record.user_id.encode(), dumps(KeyedEvent(event=record, source=source))
    return record.user_id.encode(), dumps(KeyedForget(forget=record, source=source))


async def route_event(message: Any, topics: Topics, limits: LimitsConfig = DEFAULT_LIMITS) -> None:
    """One `events` record (faust Message) -> the by-user topic, keyed by user, or a
    dead letter with the reason.

    Whatever the record holds, it ends one way or the other: an error of the worker
    code on it is its dead letter (the reason names the exception), never the agent's
    end. Only a failed send (the broker's) propagates.
    """
    try:
        key, value = keyed_record(message, limits)
    except InvalidRecord as exc:
        letter = deadletters.from_message(message, str(exc))
        await deadletters.send(topics.dead_letters, letter, deadletters.INVALID)
        return
    except Exception as exc:
        letter = deadletters.from_message(message, f"routing failed: {describe(exc)}")
        await deadletters.send(topics.dead_letters, letter, deadletters.FAILED)
        return
    await topics.by_user.send(key=key, value=value)


def register_ingest(pipeline: Pipeline) -> Any:
    """events (any key) -> by-user topic (key user_id); invalid records -> dead letters."""
    topics, limits = pipeline.topics, pipeline.settings.limits
    events_in = metrics.EVENTS_IN.labels(topic=pipeline.settings.kafka.topics.events)

    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            events_in.inc()
            await route_event(event.message, topics, limits)

    return pipeline.app.agent(topics.events, name="streamrec.ingest")(ingest)


def to_recommendation(keyed: KeyedEvent, result: RecResult, now: float) -> Recommendation:
    event = keyed.event
    return Recommendation(
        user_id=event.user_id,
        event_id=result.event_id,
        scenario=event.scenario,
        items=[ScoredItem(item_id=i, score=s) for i, s in result.items],
        model_version=result.model_version,
        ts=now,
        latency_ms=max(0.0, (now - keyed.source.timestamp) * 1000.0),
    )


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
    )


async def feed_trainer(trainer: Any, samples: list[Sample]) -> None:
    """Hand training samples to the trainer actor (it only queues them: cheap).

    Samples are derived data, not records: if the trainer cannot take them, the
    recommendations already went out and the loss is a slower-learning model, so it is
    logged rather than dead-lettered.
    """
    try:
        await trainer.add.remote(samples)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("trainer did not take %d samples: %s", len(samples), describe(exc))


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
) -> None:
    """A micro-batch of by-user messages -> new user states in ``users`` (the Faust
    table, keyed by the UTF-8 user id), one recommendation per event, samples to the
    trainer; a forget record removes its user's state and samples (`streams.forget`).

    Every message ends as a recommendation (a forget: its user forgotten) or a dead
    letter with its reason: a message the ingest agent did not write, a user whose
    stored state cannot be read, or an event the recommender fails on (found by serving
    the batch in halves). Failures of Ray or the store are waited out
    (`streams.remote.call_until_done`). The batch is served in runs split at forget
    records, so a forget comes after its user's earlier events and before later ones.
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
    for run in runs(records, type):
        if isinstance(run[0], KeyedForget):
            forgets = [r for r in run if isinstance(r, KeyedForget)]
            await forget_users(forgets, topics=topics, users=users, actors=actors, retry=retry)
        else:
            keyed = [r for r in run if isinstance(r, KeyedEvent)]
            await _recommend_events(keyed, topics=topics, users=users, actors=actors, retry=retry)


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
        await _serve(part, states, topics=topics, users=users, actors=actors, retry=retry)

    async def reject(part: Sequence[KeyedEvent], exc: BaseException) -> None:
        await _dead(topics, part, f"recommendation failed: {describe(exc)}", deadletters.FAILED)

    if keyed:
        await in_halves(keyed, serve, reject)


async def _serve(
    keyed: Sequence[KeyedEvent],
    states: dict[str, UserState | None],
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
) -> None:
    """Events -> recommender -> states, recommendations, samples; writes nothing if the
    recommender raises (so the caller can serve the events again in halves).

    ``states`` holds the current state of every user of ``keyed`` and is updated."""
    inputs = [event_in(k) for k in keyed]
    mine = {uid: states[uid] for uid in dict.fromkeys(k.event.user_id for k in keyed)}
    # ([EventIn], {user_id: UserState | None}) -> Batch(results, new states, samples)
    out = await call_until_done(
        partial(actors.recommender.recommend.remote, inputs, mine), retry, what="recommend"
    )
    now = time.time()
    try:  # every output encoded before any is written: a failure here is the input's
        stored = {uid: encode_state(state, seen=now) for uid, state in out.states.items()}
        recs = [to_recommendation(k, r, now) for k, r in zip(keyed, out.results, strict=True)]
        sends = [(rec.user_id.encode(), dumps(rec), rec.latency_ms) for rec in recs]
    except Exception as exc:
        raise InputFailed(exc) from exc
    for uid, state in out.states.items():
        states[uid] = state
        users[uid.encode()] = stored[uid]
    for key, value, latency_ms in sends:
        await topics.recommendations.send(key=key, value=value)
        metrics.RECOMMENDATIONS.inc()
        metrics.LATENCY.observe(latency_ms / 1000.0)
    if actors.trainer is not None and out.samples:
        await feed_trainer(actors.trainer, out.samples)


def register_recommend(pipeline: Pipeline, actors: Actors) -> Any:
    """by-user events -> users table update + one recommendation per event."""
    kafka, retry = pipeline.settings.kafka, pipeline.settings.retry
    topics, users = pipeline.topics, pipeline.users

    async def recommend(stream: Any) -> None:
        async for batch in stream.take_events(kafka.batch_size, within=kafka.batch_within):
            messages = [e.message for e in batch]
            metrics.BATCH_SIZE.observe(len(messages))
            await recommend_batch(messages, topics=topics, users=users, actors=actors, retry=retry)

    return pipeline.app.agent(topics.by_user, name="streamrec.recommend")(recommend)
