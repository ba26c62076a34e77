"""Catalog agent: item records -> language-model vectors -> the catalog actor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from streams import deadletters
from streams.app import Pipeline
from streams.remote import call_with_retries, describe
from streams.schemas import InvalidRecord, ItemRecord, decode_item
from workers.actors import Actors
from workers.catalog import CatalogItem

log = logging.getLogger(__name__)


def _index(actors: Actors, items: list[CatalogItem]) -> Any:
    """One Ray round: the encoder's output ref goes straight into the catalog actor."""
    vectors = actors.encoder.encode.remote([i.text for i in items])
    return actors.catalog.index.remote(items, vectors)


async def index_batch(
    messages: Sequence[Any], *, dead_letters: Any, actors: Actors, retry_backoff: float = 0.5
) -> None:
    """A micro-batch of `items` messages -> indexed items, or dead letters with reasons."""
    # [faust Message(items record)] -> [(Message, ItemRecord)]
    good: list[tuple[Any, ItemRecord]] = []
    for message in messages:
        try:
            good.append((message, decode_item(message.value)))
        except InvalidRecord as exc:
            await deadletters.send(dead_letters, deadletters.from_message(message, str(exc)))
    if not good:
        return
    items = [CatalogItem(r.item_id, r.text, r.scenario) for _, r in good]
    try:
        # encoder.encode(texts) -> (n, d); catalog.index(items, vectors) -> catalog size
        await call_with_retries(
            partial(_index, actors, items), what="catalog indexing", backoff=retry_backoff
        )
    except Exception as exc:
        reason = f"indexing failed: {describe(exc)}"
        for message, _ in good:
            await deadletters.send(dead_letters, deadletters.from_message(message, reason))


def register(pipeline: Pipeline, actors: Actors) -> Any:
    """Attach the catalog agent to the app; returns the agent."""
    kafka = pipeline.settings.kafka
    dead = pipeline.topics.dead_letters

    async def catalog(stream: Any) -> None:
        async for batch in stream.take_events(kafka.batch_size, within=kafka.batch_within):
            await index_batch([e.message for e in batch], dead_letters=dead, actors=actors)

    return pipeline.app.agent(pipeline.topics.items, name="streamrec.catalog")(catalog)
