# ruff: noqa: F811  (the real-catalog fixtures are imported from test_hot_swap)
"""The trainer learns the whole catalog (`TrainingConfig.whole_catalog`), not only the
items the stream has named: `Catalog.indexed_since` on the real catalog class, the
trainer service following it, and where a round's negatives come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_hot_swap import (  # the fixtures too: a real catalog of 40 items
    DIM,
    N_ITEMS,
    adapters,  # noqa: F401
    catalog_items,
    events,
    serve,
    store,  # noqa: F401
    training,
)
from tests.unit.training.toy import catalog, samples, trainer
from workers.catalog import Catalog, CatalogItem
from workers.config import AdapterStoreConfig, StoreConfig
from workers.trainer_service import TrainerService


def test_a_follower_gets_every_id_then_only_the_new_ones(store: Catalog) -> None:
    log, position, ids = store.indexed_since(None, 0)
    assert sorted(ids) == sorted(f"i{n}" for n in range(N_ITEMS)) and position == N_ITEMS
    assert store.indexed_since(log, position) == (log, position, [])
    store.index([CatalogItem("new", "a new item", "shop")], np.ones((1, DIM), np.float32))
    assert store.indexed_since(log, position) == (log, position + 1, ["new"])
    assert len(store.indexed_since("another log", 5)[2]) == N_ITEMS + 1  # starts over


def test_a_restarted_catalog_lists_what_its_store_holds(
    tmp_path: Path, adapters: AdapterStoreConfig
) -> None:
    config = StoreConfig(url=f"local:{tmp_path / 'qdrant'}")
    first = Catalog(config, DIM, adapters)
    items, base = catalog_items()
    first.index(items, base)
    log, _, _ = first.indexed_since(None, 0)
    first.close()
    again = Catalog(config, DIM, adapters)
    try:
        new_log, position, ids = again.indexed_since(log, N_ITEMS)
        assert new_log != log and position == N_ITEMS and len(ids) == N_ITEMS
    finally:
        again.close()


def test_re_indexing_compacts_the_log_under_a_new_identity(store: Catalog) -> None:
    log, _, _ = store.indexed_since(None, 0)
    items, base = catalog_items()
    for _ in range(40):  # every item indexed again and again (texts changed)
        store.index(items, base)
    new_log, position, ids = store.indexed_since(log, 10)
    assert (
        new_log != log and len(ids) <= 2 * N_ITEMS + 1024 and set(ids) == {i.item_id for i in items}
    )
    assert position == len(store.indexed)


@pytest.mark.parametrize("whole", [True, False])
def test_the_trainer_learns_the_items_the_stream_never_named(
    store: Catalog, adapters: AdapterStoreConfig, whole: bool
) -> None:
    rec = serve(store, adapters)
    named = rec.recommend(events("u1", [1, 2, 3, 4, 5]), {})
    service = TrainerService(training(whole_catalog=whole), store, DIM, background=False)
    service.add(named.samples)
    service.train_now()
    cached = set(service.trainer.vectors.ids)
    if whole:
        assert cached == {f"i{n}" for n in range(N_ITEMS)}
    else:
        assert cached == {f"i{n}" for n in (1, 2, 3, 4, 5)}
    store.index([CatalogItem("late", "indexed later", "shop")], np.ones((1, DIM), np.float32))
    service.add(rec.recommend(events("u1", [6, 7], start=10), {}).samples)
    service.train_now()
    assert ("late" in service.trainer.vectors) is whole


def test_negatives_come_from_the_named_items_or_the_whole_catalog() -> None:
    def drawn(share: float) -> tuple[set[int], set[int]]:
        t = trainer(catalog_negatives=share, negatives=400)
        t.add_base_vectors(catalog(), {})  # 40 items known ...
        t.add(samples(30, seed=0, n=10))  # ... the stream names only i0-i9
        named_rows = {t.vectors.rows[f"i{n}"] for n in range(10)}
        rng = np.random.default_rng(0)
        return {int(r) for r in t._negatives(rng)}, named_rows

    rows, named_rows = drawn(0.0)
    assert rows <= named_rows
    rows, named_rows = drawn(1.0)
    assert len(rows - named_rows) > 20
    rows, named_rows = drawn(0.5)
    assert rows & named_rows and len(rows - named_rows) > 20
