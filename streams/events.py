"""Event agents: validate and repartition by user, then recommend in micro-batches."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from streams import deadletters
from streams.app import Pipeline
from streams.remote import call_with_retries, describe
from streams.schemas import (
    InvalidRecord,
    KeyedEvent,
    Recommendation,
    ScoredItem,
    SourceRef,
    decode_event,
    dumps,
)
from workers.actors import Actors
from workers.recommender import EventIn, RecResult
from workers.training import Sample

log = logging.getLogger(__name__)


def _key_text(key: bytes | None) -> str | None:
    return key.decode("utf-8", "replace") if key is not None else None


def register_ingest(pipeline: Pipeline) -> Any:
    """events (any key) -> by-user topic (key user_id); invalid records -> dead letters."""
    topics = pipeline.topics

    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                record = decode_event(
                    msg.value, default_event_id=f"{msg.topic}-{msg.partition}-{msg.offset}"
                )
            except InvalidRecord as exc:
                await deadletters.send(topics.dead_letters, deadletters.from_message(msg, str(exc)))
                continue
            source = SourceRef(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=_key_text(msg.key),
                timestamp=msg.timestamp,
            )
            keyed = KeyedEvent(event=record, source=source)
            # (user_id, KeyedEvent): co-partitioned with the users table
            await topics.by_user.send(key=record.user_id.encode(), value=dumps(keyed))

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


def register_recommend(pipeline: Pipeline, actors: Actors) -> Any:
    """by-user events -> users table update + one recommendation per event."""
    kafka = pipeline.settings.kafka
    topics, users = pipeline.topics, pipeline.users

    async def recommend(stream: Any) -> None:
        async for batch in stream.take_events(kafka.batch_size, within=kafka.batch_within):
            # [faust Event] -> [KeyedEvent] (internal topic, written by the ingest agent)
            keyed: list[KeyedEvent] = []
            for e in batch:
                try:
                    keyed.append(KeyedEvent.model_validate_json(e.message.value))
                except ValueError as exc:  # not written by a compatible ingest agent
                    letter = deadletters.from_message(e.message, f"bad internal record: {exc}")
                    await deadletters.send(topics.dead_letters, letter)
            if not keyed:
                continue
            inputs = [
                EventIn(
                    event_id=k.event.event_id or "",
                    user_id=k.event.user_id,
                    item_id=k.event.item_id,
                    scenario=k.event.scenario,
                    weight=k.event.weight,
                    text=k.event.text,
                )
                for k in keyed
            ]
            states = {uid: users.get(uid) for uid in {i.user_id for i in inputs}}
            try:
                # ([EventIn], {user_id: state}) -> Batch(results, new states, samples)
                batch_out = await call_with_retries(
                    partial(actors.recommender.recommend.remote, inputs, states),
                    what="recommend",
                )
            except Exception as exc:
                reason = f"recommendation failed: {describe(exc)}"
                for k in keyed:
                    letter = deadletters.from_source(k.source, reason, k.event.model_dump_json())
                    await deadletters.send(topics.dead_letters, letter)
                continue
            for uid, state in batch_out.states.items():
                users[uid] = state
            now = time.time()
            for k, result in zip(keyed, batch_out.results, strict=True):
                rec = to_recommendation(k, result, now)
                await topics.recommendations.send(key=rec.user_id.encode(), value=dumps(rec))
            if actors.trainer is not None and batch_out.samples:
                await feed_trainer(actors.trainer, batch_out.samples)

    return pipeline.app.agent(topics.by_user, name="streamrec.recommend")(recommend)
