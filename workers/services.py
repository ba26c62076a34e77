"""The plain classes behind the Ray actors (heavy setup in ``__init__``, batch methods).

Tests call them directly; `workers.actors` is the one place that wraps them in
``ray.remote``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.config import RecommendConfig, StoreConfig
from workers.recommender import EventIn, Recommender, RecResult, TextEmbedder, VectorLookup
from workers.store import Hit, ItemPoint, SearchRequest, open_store
from workers.user_math import Vector


@dataclass(frozen=True)
class CatalogItem:
    """An item to index: the contract fields the store keeps."""

    item_id: str
    text: str
    scenario: str = "default"


class StoreService:
    """Owns the vector store (one per cluster for the in-process Qdrant engine)."""

    def __init__(self, config: StoreConfig, dim: int) -> None:
        self.store = open_store(
            config.url, dim=dim, collection=config.collection, api_key=config.api_key
        )

    def index(self, items: Sequence[CatalogItem], base: Vector) -> int:
        """Upsert items with their language-model vectors; returns the catalog size."""
        if len(items) != len(base):
            raise ValueError(f"{len(items)} items but {len(base)} vectors")
        latest = {item.item_id: i for i, item in enumerate(items)}  # last record wins
        points = [
            ItemPoint(
                item_id=items[i].item_id,
                scenario=items[i].scenario,
                text=items[i].text,
                base=np.asarray(base[i], dtype=np.float32),
                rec=np.asarray(base[i], dtype=np.float32),
            )
            for i in latest.values()
        ]
        self.store.upsert(points)
        return self.store.count()

    def vectors(self, item_ids: Sequence[str], using: str = "rec") -> dict[str, Vector]:
        return self.store.vectors(item_ids, using=using)

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        return self.store.search(requests)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()


class RecommenderService:
    """A `Recommender` whose store and encoder are reached through given adapters."""

    def __init__(self, config: RecommendConfig, store: VectorLookup, encoder: TextEmbedder):
        self.recommender = Recommender(config, store, encoder)

    def recommend(
        self, events: Sequence[EventIn], states: Mapping[str, Mapping[str, Any] | None]
    ) -> tuple[list[RecResult], dict[str, dict[str, Any]]]:
        return self.recommender.recommend(events, states)
