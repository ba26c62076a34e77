"""Contract tests run unchanged against every VectorStore backend: writing, deleting,
reading back, closing and reopening."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.store.helpers import (
    DIM,
    Opener,
    assert_matches,
    brute_force,
    make_items,
    search_one,
    unit,
)
from workers.store import ItemPoint, SearchRequest, StoreError, VectorStore


def test_upsert_and_count(store: VectorStore) -> None:
    assert store.count() == 0
    store.upsert(make_items(10))
    assert store.count() == 10
    store.upsert(make_items(5, prefix="other"))
    assert store.count() == 15
    store.upsert([])
    assert store.count() == 15


def test_upsert_replaces_existing_id(store: VectorStore) -> None:
    items = make_items(12)
    store.upsert(items)
    new = make_items(1, seed=99)[0]
    replacement = ItemPoint("item-3", "z", "new text", new.base, new.rec)
    store.upsert([replacement])
    assert store.count() == 12
    np.testing.assert_allclose(store.vectors(["item-3"])["item-3"], unit(new.rec), atol=1e-5)
    np.testing.assert_allclose(
        store.vectors(["item-3"], using="base")["item-3"], unit(new.base), atol=1e-5
    )
    assert [h.item_id for h in search_one(store, SearchRequest(new.rec, 5, scenario="z"))] == [
        "item-3"
    ]
    assert "item-3" not in {h.item_id for h in search_one(store, SearchRequest(new.rec, 20, "a"))}
    current = [replacement if item.item_id == "item-3" else item for item in items]
    assert_matches(search_one(store, SearchRequest(new.rec, 4)), brute_force(current, new.rec, 4))


def test_update_rec_replaces_only_the_rec_vectors(store: VectorStore) -> None:
    items = make_items(12)
    store.upsert(items)
    moved = make_items(3, seed=7)
    store.update_rec(["item-2", "item-5", "item-9"], np.stack([m.rec for m in moved]))
    assert store.count() == 12
    stored = store.get(["item-2", "item-5", "item-1"])
    for item_id, new in zip(["item-2", "item-5"], moved, strict=False):
        np.testing.assert_allclose(stored[item_id].rec, unit(new.rec), atol=1e-5)
        old = items[int(item_id.split("-")[1])]
        np.testing.assert_allclose(stored[item_id].base, unit(old.base), atol=1e-5)
        assert (stored[item_id].scenario, stored[item_id].text) == (old.scenario, old.text)
    np.testing.assert_allclose(stored["item-1"].rec, unit(items[1].rec), atol=1e-5)
    current = [
        ItemPoint(i.item_id, i.scenario, i.text, i.base, moved[[2, 5, 9].index(n)].rec)
        if n in (2, 5, 9)
        else i
        for n, i in enumerate(items)
    ]
    query = moved[1].rec
    assert_matches(search_one(store, SearchRequest(query, 4)), brute_force(current, query, 4))
    with pytest.raises(StoreError):
        store.update_rec(["never-stored"], moved[0].rec[None, :])
    with pytest.raises(ValueError, match="distinct"):
        store.update_rec(["item-1", "item-1"], np.stack([moved[0].rec, moved[1].rec]))
    with pytest.raises(ValueError, match="shape"):
        store.update_rec(["item-1"], np.stack([moved[0].rec, moved[1].rec]))


def test_deleted_items_are_neither_searched_nor_read(store: VectorStore) -> None:
    items = make_items(12)
    store.upsert(items)
    store.delete(["item-3", "item-7", "item-3", "never-there"])
    assert store.count() == 10
    gone = {"item-3", "item-7"}
    assert not gone & store.vectors(["item-3", "item-7", "item-1"]).keys()
    assert not gone & store.get(["item-3", "item-7"]).keys()
    assert not gone & {p.item_id for page in store.scan(batch=4) for p in page}
    rest = [i for i in items if i.item_id not in gone]
    assert_matches(
        search_one(store, SearchRequest(items[3].rec, 12, exact=True)),
        brute_force(rest, items[3].rec, 12),
    )
    store.delete([])
    store.upsert([items[3]])  # a deleted id can come back
    assert store.count() == 11 and "item-3" in store.vectors(["item-3"])


def test_later_record_in_one_batch_wins(store: VectorStore) -> None:
    first, second = make_items(2)
    store.upsert([first, ItemPoint(first.item_id, "b", "later", second.base, second.rec)])
    assert store.count() == 1
    np.testing.assert_allclose(store.vectors([first.item_id])[first.item_id], unit(second.rec))
    assert search_one(store, SearchRequest(second.rec, 3, scenario="a")) == []


def test_vectors_returns_requested_present_ids(store: VectorStore) -> None:
    items = make_items(8)
    store.upsert(items)
    wanted = ["item-1", "missing", "item-6", "item-2"]
    rec = store.vectors(wanted)
    base = store.vectors(wanted, using="base")
    assert set(rec) == set(base) == {"item-1", "item-6", "item-2"}
    for item_id in rec:
        item = items[int(item_id.split("-")[1])]
        assert rec[item_id].dtype == np.float32 and rec[item_id].shape == (DIM,)
        np.testing.assert_allclose(rec[item_id], unit(item.rec), atol=1e-5)
        np.testing.assert_allclose(base[item_id], unit(item.base), atol=1e-5)
        assert not np.allclose(rec[item_id], base[item_id], atol=1e-2)
    assert store.vectors([]) == {}
    assert store.vectors(["nope"]) == {}


def test_get_returns_whole_points_of_present_ids(store: VectorStore) -> None:
    items = make_items(12)
    store.upsert(items)
    got = store.get(["item-3", "missing", "item-7", "item-3"])
    assert sorted(got) == ["item-3", "item-7"]
    for item_id in got:
        want = items[int(item_id.split("-")[1])]
        assert (got[item_id].scenario, got[item_id].text) == (want.scenario, want.text)
        np.testing.assert_allclose(got[item_id].base, unit(want.base), atol=1e-5)
        np.testing.assert_allclose(got[item_id].rec, unit(want.rec), atol=1e-5)
    assert store.get([]) == {}


def test_scan_yields_every_item_once_in_pages(store: VectorStore) -> None:
    items = make_items(23)
    store.upsert(items)
    pages = list(store.scan(batch=5))
    assert all(0 < len(page) <= 5 for page in pages)
    seen = [p.item_id for page in pages for p in page]
    assert sorted(seen) == sorted(i.item_id for i in items)
    by_id = {p.item_id: p for page in pages for p in page}
    np.testing.assert_allclose(by_id["item-9"].rec, unit(items[9].rec), atol=1e-5)
    assert list(store.scan()) != [] and sum(len(p) for p in store.scan(batch=100)) == 23


def test_caller_arrays_are_not_mutated(store: VectorStore) -> None:
    items = make_items(6)
    for item in items:
        item.base.setflags(write=False)
        item.rec.setflags(write=False)
    copies = [(item.base.copy(), item.rec.copy()) for item in items]
    store.upsert(items)
    query = (np.arange(DIM, dtype=np.float32) + 1.0) * np.float32(5.0)
    query_copy = query.copy()
    store.search([SearchRequest(query, 3), SearchRequest(query, 3, using="base")])
    returned = store.vectors(["item-0"])
    returned["item-0"] *= 2.0  # the caller owns what it gets back
    for item, (base, rec) in zip(items, copies, strict=True):
        np.testing.assert_array_equal(item.base, base)
        np.testing.assert_array_equal(item.rec, rec)
    np.testing.assert_array_equal(query, query_copy)
    np.testing.assert_allclose(store.vectors(["item-0"])["item-0"], unit(items[0].rec), atol=1e-5)


def test_invalid_input_is_rejected(store: VectorStore) -> None:
    item = make_items(1)[0]
    wrong = np.ones(DIM + 1, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        store.upsert([ItemPoint("x", "a", "t", wrong, item.rec)])
    with pytest.raises(ValueError, match="non-finite"):
        store.upsert([ItemPoint("x", "a", "t", item.base, np.full(DIM, np.nan, np.float32))])
    assert store.count() == 0
    with pytest.raises(ValueError, match="shape"):
        store.search([SearchRequest(wrong, 3)])
    with pytest.raises(ValueError, match="vector name"):
        store.search([SearchRequest(item.rec, 3, using="other")])
    with pytest.raises(ValueError, match="vector name"):
        store.vectors(["x"], using="other")
    with pytest.raises(ValueError, match="k must be"):
        store.search([SearchRequest(item.rec, -1)])
    with pytest.raises(ValueError, match="exclude"):
        store.search([SearchRequest(item.rec, 3, exclude="item-0")])


def test_close_is_idempotent_and_final(store: VectorStore) -> None:
    store.upsert(make_items(2))
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count()
    with pytest.raises(StoreError, match="closed"):
        store.search([SearchRequest(np.ones(DIM, np.float32), 1)])


def test_persistence_round_trip(persistent_opener: Opener) -> None:
    items = make_items(20)
    first = persistent_opener()
    first.upsert(items)
    first.close()
    second = persistent_opener()
    assert second.count() == 20
    np.testing.assert_allclose(second.vectors(["item-7"])["item-7"], unit(items[7].rec), atol=1e-5)
    hits = search_one(second, SearchRequest(items[7].rec, 5, scenario="b", exclude=["item-1"]))
    assert_matches(hits, brute_force(items, items[7].rec, 5, scenario="b", exclude=["item-1"]))
    second.upsert(make_items(3, prefix="late"))
    second.close()
    assert persistent_opener().count() == 23


def test_dimension_mismatch_raises(persistent_opener: Opener) -> None:
    persistent_opener().upsert(make_items(3))
    persistent_opener.close_all()
    with pytest.raises(StoreError):
        persistent_opener(dim=DIM // 2)
    # the refused open neither damaged nor locked the store
    assert persistent_opener().count() == 3
