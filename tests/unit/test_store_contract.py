"""Contract tests run unchanged against every VectorStore backend.

Each backend is compared with a brute-force cosine reference on small deterministic
random data, in the style of qdrant-client's congruence tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from workers.store import (
    Hit,
    ItemPoint,
    SearchRequest,
    StoreError,
    VectorStore,
    open_store,
    point_id,
)
from workers.store.edge import EdgeStore
from workers.store.qdrant_client_store import QdrantClientStore

DIM = 16
KINDS = ("edge", "local-memory", "local-path")
PERSISTENT_KINDS = ("edge", "local-path")
Vec = npt.NDArray[np.float32]


class Opener:
    """Opens stores of one kind at one URL and closes them all at teardown."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.opened: list[VectorStore] = []

    def __call__(self, dim: int = DIM) -> VectorStore:
        store = open_store(self.url, dim=dim)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def _url(kind: str, tmp_path: Path) -> str:
    return {
        "edge": f"edge://{tmp_path / 'edge'}",
        "local-memory": "local::memory:",
        "local-path": f"local:{tmp_path / 'local'}",
    }[kind]


@pytest.fixture(params=KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    made = Opener(request.param, _url(request.param, tmp_path))
    yield made
    made.close_all()


@pytest.fixture(params=PERSISTENT_KINDS)
def persistent_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    made = Opener(request.param, _url(request.param, tmp_path))
    yield made
    made.close_all()


@pytest.fixture
def store(opener: Opener) -> VectorStore:
    return opener()


def make_items(
    n: int, *, seed: int = 0, scenarios: Sequence[str] = ("a", "b"), prefix: str = "item"
) -> list[ItemPoint]:
    """Items with independent random (non-normalised) base and rec vectors."""
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal((n, DIM)) * 3.0).astype(np.float32)
    rec = (rng.standard_normal((n, DIM)) * 3.0).astype(np.float32)
    return [
        ItemPoint(f"{prefix}-{i}", scenarios[i % len(scenarios)], f"text {i}", base[i], rec[i])
        for i in range(n)
    ]


def unit(v: Vec) -> Vec:
    return (v / np.linalg.norm(v)).astype(np.float32)


def brute_force(
    items: Sequence[ItemPoint],
    query: Vec,
    k: int,
    *,
    using: str = "rec",
    scenario: str | None = None,
    exclude: Sequence[str] = (),
) -> list[tuple[str, float]]:
    """Exact cosine top-k over ``items``: the reference every backend must match."""
    q = unit(query)
    scored = [
        (item.item_id, float(unit(getattr(item, using)) @ q))
        for item in items
        if (scenario is None or item.scenario == scenario) and item.item_id not in exclude
    ]
    return sorted(scored, key=lambda pair: -pair[1])[:k]


def assert_matches(hits: list[Hit], expected: list[tuple[str, float]]) -> None:
    assert [h.item_id for h in hits] == [item_id for item_id, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)


def search_one(store: VectorStore, request: SearchRequest) -> list[Hit]:
    (hits,) = store.search([request])
    return hits


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


def test_search_returns_nearest_first(store: VectorStore) -> None:
    items = make_items(40)
    store.upsert(items)
    for item in items[:5]:
        hits = search_one(store, SearchRequest(item.rec * np.float32(3.7), 7))
        assert hits[0].item_id == item.item_id
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert_matches(hits, brute_force(items, item.rec, 7))


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


def test_edge_second_open_is_refused_until_close(tmp_path: Path) -> None:
    url = f"edge:{tmp_path}"
    first = open_store(url, dim=DIM)
    try:
        with pytest.raises(StoreError):
            open_store(url, dim=DIM)
    finally:
        first.close()
    second = open_store(url, dim=DIM)
    second.close()


def test_edge_upsert_survives_process_kill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from workers.store import ItemPoint, open_store
        store = open_store({f"edge:{tmp_path}"!r}, dim={DIM})
        rng = np.random.default_rng(5)
        vecs = rng.standard_normal((50, {DIM})).astype(np.float32)
        store.upsert([ItemPoint(f"k-{{i}}", "a", "t", vecs[i], vecs[i]) for i in range(50)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, check=False)
    assert done.returncode == -signal.SIGKILL
    store = open_store(f"edge:{tmp_path}", dim=DIM)
    try:
        assert store.count() == 50
        vecs = np.random.default_rng(5).standard_normal((50, DIM)).astype(np.float32)
        assert search_one(store, SearchRequest(vecs[17], 1))[0].item_id == "k-17"
    finally:
        store.close()


def test_edge_optimize_and_flush_keep_results(tmp_path: Path) -> None:
    items = make_items(50)
    store = EdgeStore(tmp_path / "shard", dim=DIM, optimize_every=10)
    try:
        store.upsert(items)
        store.optimize()
        store.flush()
        assert_matches(
            search_one(store, SearchRequest(items[3].rec, 5)), brute_force(items, items[3].rec, 5)
        )
    finally:
        store.close()


def test_point_id_is_stable_uuid() -> None:
    assert point_id("item-1") == point_id("item-1")
    assert point_id("item-1") != point_id("item-2")
    assert str(point_id("item-1")) == "340bf97a-242d-5472-98bc-8ff635fc90a0"


@pytest.mark.parametrize(
    ("url", "kind", "where"),
    [
        ("edge:rel/dir", EdgeStore, "rel/dir/items"),
        ("edge://rel2", EdgeStore, "rel2/items"),
        ("edge:///ABS/dir", EdgeStore, "dir/items"),
        ("local:loc", QdrantClientStore, "loc/collection/items"),
        ("local::memory:", QdrantClientStore, None),
    ],
)
def test_open_store_url_forms(
    url: str,
    kind: type[VectorStore],
    where: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url.replace("/ABS", str(tmp_path)), dim=DIM)
    try:
        assert isinstance(store, kind)
        assert store.dim == DIM
        store.upsert(make_items(1))
        if where is not None:
            assert (tmp_path / where).is_dir()
    finally:
        store.close()


def test_open_store_http_targets_a_server() -> None:
    # Nothing listens on port 1: the server store is built, fails to connect, and says so.
    with pytest.raises(StoreError, match="collection"):
        open_store("http://127.0.0.1:1", dim=DIM)


@pytest.mark.parametrize(
    "url", ["", "qdrant://host", "edge:", "edge://", "local:", "ftp://x", "memory", "http://"]
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?s)edge:.*local::memory:.*http://") as caught:
        open_store(url, dim=DIM)
    assert repr(url) in str(caught.value)


@pytest.mark.parametrize("collection", ["", "a/b", ".."])
def test_open_store_rejects_bad_collection(collection: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collection"):
        open_store(f"edge:{tmp_path}", dim=DIM, collection=collection)
    assert not any(tmp_path.iterdir())
