"""Contract tests run unchanged against every VectorStore backend: searches, compared
with the brute-force cosine reference."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.store.helpers import assert_matches, brute_force, make_items, search_one
from workers.store import SearchRequest, VectorStore


def test_search_returns_nearest_first(store: VectorStore) -> None:
    items = make_items(40)
    store.upsert(items)
    for item in items[:5]:
        hits = search_one(store, SearchRequest(item.rec * np.float32(3.7), 7))
        assert hits[0].item_id == item.item_id
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert_matches(hits, brute_force(items, item.rec, 7))


def test_exact_search_matches_brute_force(store: VectorStore) -> None:
    items = make_items(60)
    store.upsert(items)
    query = items[11].rec + items[12].rec
    hits = search_one(store, SearchRequest(query, 9, exact=True, exclude=["item-11"]))
    assert_matches(hits, brute_force(items, query, 9, exclude=["item-11"]))


def test_search_using_base_vector(store: VectorStore) -> None:
    items = make_items(30)
    store.upsert(items)
    query = items[4].base
    by_base = search_one(store, SearchRequest(query, 5, using="base"))
    assert by_base[0].item_id == "item-4"
    assert by_base[0].score == pytest.approx(1.0, abs=1e-4)
    assert_matches(by_base, brute_force(items, query, 5, using="base"))
    assert_matches(search_one(store, SearchRequest(query, 5)), brute_force(items, query, 5))


def test_exclude_never_returns_ids_and_fills_k(store: VectorStore) -> None:
    items = make_items(30)
    store.upsert(items)
    query = items[0].rec
    nearest = [item_id for item_id, _ in brute_force(items, query, 3)]
    exclude = [*nearest, "not-stored"]
    hits = search_one(store, SearchRequest(query, 10, exclude=exclude))
    assert len(hits) == 10
    assert not {h.item_id for h in hits} & set(exclude)
    assert_matches(hits, brute_force(items, query, 10, exclude=exclude))


def test_scenario_filter(store: VectorStore) -> None:
    items = make_items(30, scenarios=("a", "b", "c"))
    store.upsert(items)
    query = items[0].rec
    hits = search_one(store, SearchRequest(query, 6, scenario="b"))
    assert len(hits) == 6
    assert all(items[int(h.item_id.split("-")[1])].scenario == "b" for h in hits)
    assert_matches(hits, brute_force(items, query, 6, scenario="b"))
    combined = search_one(store, SearchRequest(query, 6, scenario="b", exclude=["item-1"]))
    assert_matches(combined, brute_force(items, query, 6, scenario="b", exclude=["item-1"]))
    assert search_one(store, SearchRequest(query, 6, scenario="unknown")) == []


def test_batch_search_results_are_independent(store: VectorStore) -> None:
    items = make_items(30)
    store.upsert(items)
    requests = [
        SearchRequest(items[0].rec, 3),
        SearchRequest(items[1].rec, 5, scenario="a", exclude=["item-1"]),
        SearchRequest(items[2].base, 0),
        SearchRequest(items[3].base, 4, using="base", exclude=["item-3", "item-5"]),
        SearchRequest(items[0].rec, 3),
    ]
    results = store.search(requests)
    assert len(results) == len(requests)
    for request, hits in zip(requests, results, strict=True):
        expected = brute_force(
            items,
            request.vector,
            request.k,
            using=request.using,
            scenario=request.scenario,
            exclude=request.exclude,
        )
        assert_matches(hits, expected)
        assert_matches(search_one(store, request), [(h.item_id, h.score) for h in hits])
    assert results[2] == []
    assert store.search([]) == []


def test_k_larger_than_collection_returns_all(store: VectorStore) -> None:
    items = make_items(10)
    store.upsert(items)
    hits = search_one(store, SearchRequest(items[0].rec, 100))
    assert sorted(h.item_id for h in hits) == sorted(item.item_id for item in items)
    assert_matches(hits, brute_force(items, items[0].rec, 100))
    fewer = search_one(store, SearchRequest(items[0].rec, 100, exclude=["item-0", "item-9"]))
    assert len(fewer) == 8


def test_empty_store_search_returns_empty_lists(store: VectorStore) -> None:
    query = make_items(1)[0].rec
    assert store.search([SearchRequest(query, 5), SearchRequest(query, 3, "a")]) == [[], []]
