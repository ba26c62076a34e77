"""Catalog agent: item records -> language-model vectors -> vector store."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from streams import deadletters
from streams.app import Pipeline
from streams.remote import call_with_retries, describe
from streams.schemas import InvalidRecord, ItemRecord, decode_item
from workers.actors import Actors
from workers.services import CatalogItem

log = logging.getLogger(__name__)


def _index(actors: Actors, items: list[CatalogItem]) -> Any:
    """One Ray round: the encoder's output ref goes straight into the store actor."""
    return actors.store.index.remote(items, actors.encoder.encode.remote([i.text for i in items]))


def register(pipeline: Pipeline, actors: Actors) -> Any:
    """Attach the catalog agent to the app; returns the agent."""
    kafka = pipeline.settings.kafka
    dead = pipeline.topics.dead_letters

    async def catalog(stream: Any) -> None:
        async for batch in stream.take_events(kafka.batch_size, within=kafka.batch_within):
            # [faust Event(message=items record)] -> [(Event, ItemRecord)]
            good: list[tuple[Any, ItemRecord]] = []
            for event in batch:
                try:
                    good.append((event, decode_item(event.message.value)))
                except InvalidRecord as exc:
                    await deadletters.send(dead, deadletters.from_message(event.message, str(exc)))
            if not good:
                continue
            items = [CatalogItem(r.item_id, r.text, r.scenario) for _, r in good]
            try:
                # encoder.encode(texts) -> (n, d); store.index(items, vectors) -> catalog size
                await call_with_retries(partial(_index, actors, items), what="catalog indexing")
            except Exception as exc:
                reason = f"indexing failed: {describe(exc)}"
                for event, _ in good:
                    await deadletters.send(dead, deadletters.from_message(event.message, reason))

    return pipeline.app.agent(pipeline.topics.items, name="streamrec.catalog")(catalog)
