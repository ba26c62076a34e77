"""The catalog: the vector store of every item, at one model version.

    catalog agent ──index(items, base vectors)──► Catalog ──► vector store (Qdrant)
    trainer ──reproject(v)──► Catalog: every item's rec = model v's projection of its base
    recommenders ──lookup / search_at──► (version, answer)

A plain class (tests call it directly); `workers.actors` makes it the store actor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.adapters.io import latest_version
from workers.config import AdapterStoreConfig, StoreConfig
from workers.model import ServingModel, Vector, load_model
from workers.store import Hit, ItemPoint, SearchRequest, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogItem:
    """An item to index: the contract fields the store keeps."""

    item_id: str
    text: str
    scenario: str = "default"


class Catalog:
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
        self.adapters_root = adapters.path
        self.dim = dim
        self.model: ServingModel = self._load(0)
        latest = latest_version(self.adapters_root)
        if latest is not None:  # a restart resumes at the newest published version
            self.reproject(latest)

    def _load(self, version: int) -> ServingModel:
        # The catalog only projects items: the user aggregator's recency is not used.
        return load_model(self.adapters_root, version, dim=self.dim, recency=1.0)

    def index(self, items: Sequence[CatalogItem], base: Vector) -> int:
        """Upsert items with their language-model vectors; returns the catalog size."""
        if len(items) != len(base):
            raise ValueError(f"{len(items)} items but {len(base)} vectors")
        matrix = np.asarray(base, dtype=np.float32)
        rec = self.model.item_vectors(
            [i.item_id for i in items], matrix, [i.scenario for i in items]
        )
        points = [
            ItemPoint(i.item_id, i.scenario, i.text, matrix[n], rec[n]) for n, i in enumerate(items)
        ]
        self.store.upsert(points)  # the store keeps the last record of a repeated id
        return self.store.count()

    def reproject(self, version: int) -> int:
        """Move the catalog to ``version`` (never backwards); returns the version now served.

        Cost: one adapter forward pass per item over the stored base vectors, no
        language model. On failure the previous version stays current.
        """
        if version <= self.model.version:
            return self.model.version
        model = self._load(version)
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

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]:
        """(model version, {item_id: rec vector}) read together."""
        return self.model.version, self.store.vectors(item_ids, using="rec")

    def items(self, item_ids: Sequence[str]) -> dict[str, tuple[Vector, str]]:
        """{item_id: (base vector, scenario)} of the present ids (what the trainer needs)."""
        return {k: (p.base, p.scenario) for k, p in self.store.get(item_ids).items()}

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        """(model version, hits) read together."""
        return self.model.version, self.store.search(requests)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()
