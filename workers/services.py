"""The plain classes behind the Ray actors (heavy setup in ``__init__``, batch methods).

Tests call them directly; `workers.actors` is the one place that wraps them in
``ray.remote``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.config import AdapterStoreConfig, RecommendConfig, StoreConfig
from workers.recommender import Batch, Catalog, EventIn, Recommender, TextEmbedder
from workers.serving_model import ServingModel
from workers.store import Hit, ItemPoint, SearchRequest, open_store
from workers.user_math import Vector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogItem:
    """An item to index: the contract fields the store keeps."""

    item_id: str
    text: str
    scenario: str = "default"


class StoreService:
    """Owns the vector store (one per cluster for the in-process Qdrant engine).

    It also owns the catalog's model version: every item's ``rec`` vector is the
    projection of its ``base`` vector by the adapter of `version`. Moving to a new
    version re-projects the whole catalog inside one call, and the actor runs one call
    at a time, so a reader sees the catalog wholly at one version; every read returns
    the version it saw, so a server can tell when it must follow.
    """

    def __init__(self, config: StoreConfig, dim: int, adapters: AdapterStoreConfig) -> None:
        self.store = open_store(
            config.url, dim=dim, collection=config.collection, api_key=config.api_key
        )
        self.model = ServingModel(adapters.path)
        latest = self.model.latest()
        if latest > 0:  # a restart resumes at the newest published version
            self.reproject(latest)

    def current_version(self) -> int:
        return self.model.version

    def index(self, items: Sequence[CatalogItem], base: Vector) -> int:
        """Upsert items with their language-model vectors; returns the catalog size."""
        if len(items) != len(base):
            raise ValueError(f"{len(items)} items but {len(base)} vectors")
        latest = {item.item_id: i for i, item in enumerate(items)}  # last record wins
        kept = [items[i] for i in latest.values()]
        base_kept = np.asarray(base, dtype=np.float32)[list(latest.values())]
        rec = self.model.item_vectors(
            [i.item_id for i in kept], base_kept, [i.scenario for i in kept]
        )
        points = [
            ItemPoint(i.item_id, i.scenario, i.text, base_kept[n], rec[n])
            for n, i in enumerate(kept)
        ]
        self.store.upsert(points)
        return self.store.count()

    def reproject(self, version: int) -> int:
        """Move the catalog to ``version`` (never backwards); returns the version now served.

        Cost: one adapter forward pass per item over the stored base vectors, no
        language model. On failure the previous version stays current.
        """
        if version <= self.model.version:
            return self.model.version
        model = self.model.load(version)
        started, moved = time.perf_counter(), 0
        for page in list(self.store.scan()):
            rec = model.item_vectors(
                [p.item_id for p in page],
                np.stack([p.base for p in page]),
                [p.scenario for p in page],
            )
            self.store.upsert(
                [
                    ItemPoint(p.item_id, p.scenario, p.text, p.base, rec[n])
                    for n, p in enumerate(page)
                ]
            )
            moved += len(page)
        self.model = model
        log.info(
            "catalog at model version %d: %d items re-projected in %.2f s",
            version,
            moved,
            time.perf_counter() - started,
        )
        return version

    def vectors(self, item_ids: Sequence[str], using: str = "rec") -> dict[str, Vector]:
        return self.store.vectors(item_ids, using=using)

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]:
        """(model version, {item_id: rec vector}) read together."""
        return self.model.version, self.store.vectors(item_ids, using="rec")

    def items(self, item_ids: Sequence[str]) -> dict[str, tuple[Vector, str]]:
        """{item_id: (base vector, scenario)} of the present ids (what the trainer needs)."""
        return {k: (p.base, p.scenario) for k, p in self.store.get(item_ids).items()}

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        return self.store.search(requests)

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        """(model version, hits) read together."""
        return self.model.version, self.store.search(requests)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()


class RecommenderService:
    """A `Recommender` whose catalog and encoder are reached through given adapters."""

    def __init__(
        self,
        config: RecommendConfig,
        catalog: Catalog,
        encoder: TextEmbedder,
        adapters: AdapterStoreConfig,
    ) -> None:
        self.recommender = Recommender(config, catalog, encoder, adapters.path)

    def recommend(
        self, events: Sequence[EventIn], states: Mapping[str, Mapping[str, Any] | None]
    ) -> Batch:
        return self.recommender.recommend(events, states)

    def model_version(self) -> int:
        return self.recommender.model_version
