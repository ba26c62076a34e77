"""Catalog agent: item records -> language-model vectors -> the catalog actor.

    items (key item_id) ──record──► encoder ──► CatalogActor.index
                        ──tombstone (null value)──► CatalogActor.delete([item_id])
                          (the replicas drop it on their next poll: never recommended again)
                        ──invalid──► dead-letters

A batch is applied in runs of one kind, in order, so an item indexed and then deleted
(or the reverse) in one batch ends as its last record says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from streams import deadletters, metrics
from streams.app import Pipeline
from streams.delivery import Receipts
from streams.inflight import hold, release
from streams.remote import call_until_done, describe, in_halves, runs
from streams.schemas import DEFAULT_LIMITS, InvalidRecord, ItemRecord, decode_item, decode_item_key
from streams.settings import LimitsConfig, RetryConfig
from workers.actors import Actors
from workers.catalog import CatalogItem

log = logging.getLogger(__name__)


def _index(actors: Actors, items: list[CatalogItem]) -> Any:
    """One Ray round: the encoder's output ref goes straight into the catalog actor."""
    vectors = actors.encoder.encode.remote([i.text for i in items])
    return actors.catalog.index.remote(items, vectors)


async def index_batch(
    messages: Sequence[Any],
    *,
    dead_letters: Any,
    actors: Actors,
    retry: RetryConfig,
    limits: LimitsConfig = DEFAULT_LIMITS,
) -> None:
    """A micro-batch of `items` messages -> indexed (or, for a tombstone: a null value
    keyed by the item id, deleted) items, or dead letters with reasons.

    A record that breaks the contract or ``limits`` (a tombstone without a usable key
    included), or that the decoding code fails on (the reason names the exception), is
    dead-lettered alone. Failures of Ray or the store are waited out; an item the
    encoder or the catalog fails on is found by indexing the batch in halves, and only
    it is dead-lettered.
    """
    # [faust Message(items record)] -> [(Message, ItemRecord | item id to delete)]
    good: list[tuple[Any, ItemRecord | str]] = []
    for message in messages:
        try:
            if message.value is None:
                good.append((message, decode_item_key(message.key, limits=limits)))
            else:
                good.append((message, decode_item(message.value, limits=limits)))
        except InvalidRecord as exc:
            letter = deadletters.from_message(message, str(exc))
            await deadletters.send(dead_letters, letter, deadletters.INVALID)
        except Exception as exc:
            letter = deadletters.from_message(message, f"decoding failed: {describe(exc)}")
            await deadletters.send(dead_letters, letter, deadletters.FAILED)

    async def index(part: Sequence[tuple[Any, ItemRecord | str]]) -> None:
        records = [r for _, r in part if isinstance(r, ItemRecord)]
        items = [CatalogItem(r.item_id, r.text, r.scenario) for r in records]
        # encoder.encode(texts) -> (n, d); catalog.index(items, vectors) -> catalog size
        await call_until_done(partial(_index, actors, items), retry, what="catalog indexing")

    async def delete(part: Sequence[tuple[Any, ItemRecord | str]]) -> None:
        ids = [r for _, r in part if isinstance(r, str)]
        # catalog.delete(item ids) -> catalog size
        await call_until_done(
            partial(actors.catalog.delete.remote, ids), retry, what="catalog delete"
        )

    async def reject(part: Sequence[tuple[Any, ItemRecord | str]], exc: BaseException) -> None:
        what = "indexing" if _is_item(part[0][1]) else "delete"
        reason = f"{what} failed: {describe(exc)}"
        for message, _ in part:
            letter = deadletters.from_message(message, reason)
            await deadletters.send(dead_letters, letter, deadletters.FAILED)

    for run in runs(good, lambda record: _is_item(record[1])):
        await in_halves(run, index if _is_item(run[0][1]) else delete, reject)


def _is_item(record: ItemRecord | str) -> bool:
    return isinstance(record, ItemRecord)


def register(pipeline: Pipeline, actors: Actors) -> Any:
    """Attach the catalog agent to the app; returns the agent."""
    settings = pipeline.settings
    kafka, retry, limits = settings.kafka, settings.retry, settings.limits
    dead = pipeline.topics.dead_letters
    items_topic = pipeline.settings.kafka.topics.items

    async def catalog(stream: Any) -> None:
        async for batch in stream.take_ready(kafka.batch_size, linger=kafka.batch_within):
            # Held until indexed: Faust acks a batch when the loop body ends, raising or
            # not, and a batch that raised (a dead letter refused for good) must stay
            # uncommitted while the worker stops (`streams.app._App`).
            hold(batch)
            messages = [e.message for e in batch]
            metrics.EVENTS_IN.labels(topic=items_topic).inc(len(messages))
            receipts = Receipts()  # its dead letters, delivered before its offsets go
            await index_batch(
                messages,
                dead_letters=receipts.topic(dead),
                actors=actors,
                retry=retry,
                limits=limits,
            )
            await receipts.confirm(retry)
            await release(stream, batch)

    return pipeline.app.agent(pipeline.topics.items, name="streamrec.catalog")(catalog)
