"""A node's catalog replica against the real catalog writer (no Ray): it copies the
serving vectors, follows new items through the change feed, takes a new model version
whole, never goes back, and keeps serving while the writer does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_hot_swap import DIM, N_ITEMS, NoText, catalog_items, events, training
from workers.catalog import Catalog, CatalogItem, Changes, Cursor
from workers.config import AdapterStoreConfig, RecommendConfig, StoreConfig
from workers.recommender import Recommender
from workers.replica import CatalogReplica, ReplicaNotReady
from workers.store import Hit, SearchRequest
from workers.trainer_service import TrainerService

# Polls only when a test asks (the background thread waits an hour).
QUIET = StoreConfig(sync_interval=3600.0)


class Source:
    """The writer as a replica reaches it, counting polls; ``down`` makes it unreachable."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog, self.polls, self.down = catalog, 0, False

    def changes_since(self, cursor: Cursor | None) -> Changes:
        self.polls += 1
        if self.down:
            raise ConnectionError("catalog unreachable")
        return self.catalog.changes_since(cursor)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Catalog]:
    config = StoreConfig(url=f"edge:{tmp_path / 'qdrant'}", feed_size=10)
    catalog = Catalog(config, DIM, AdapterStoreConfig(path=tmp_path / "adapters"))
    items, base = catalog_items()
    catalog.index(items, base)
    try:
        yield catalog
    finally:
        catalog.close()


@pytest.fixture
def source(writer: Catalog) -> Source:
    return Source(writer)


@pytest.fixture
def replica(source: Source) -> Iterator[CatalogReplica]:
    copy = CatalogReplica(source, DIM, QUIET)
    try:
        yield copy
    finally:
        copy.close()


def new_items(first: int, count: int) -> tuple[list[CatalogItem], np.ndarray]:
    rng = np.random.default_rng(first)
    items = [CatalogItem(f"new{n}", f"new item {n}", "shop") for n in range(first, first + count)]
    return items, rng.standard_normal((count, DIM)).astype(np.float32)


def query(k: int = 5) -> SearchRequest:
    return SearchRequest(vector=np.ones(DIM, dtype=np.float32), k=k, exact=True)


def assert_same_answer(
    mine: tuple[int, list[list[Hit]]], theirs: tuple[int, list[list[Hit]]]
) -> None:
    """Same version, same items in the same order, scores equal to float32 rounding."""
    assert mine[0] == theirs[0]
    assert [[h.item_id for h in hits] for hits in mine[1]] == [
        [h.item_id for h in hits] for hits in theirs[1]
    ]
    for a, b in zip(mine[1], theirs[1], strict=True):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_the_copy_answers_as_the_writer(writer: Catalog, replica: CatalogReplica) -> None:
    ids = [f"i{n}" for n in range(N_ITEMS)]
    version, mine = replica.lookup(ids)
    _, theirs = writer.lookup(ids)
    assert version == 0 and mine.keys() == theirs.keys()
    for item_id in ids:
        np.testing.assert_allclose(mine[item_id], theirs[item_id], atol=1e-6)
    assert_same_answer(replica.search_at([query()]), writer.search_at([query()]))


def test_new_items_arrive_as_changes_and_a_miss_polls_at_once(
    writer: Catalog, source: Source, replica: CatalogReplica
) -> None:
    items, base = new_items(100, 3)
    writer.index(items, base)
    cursor = replica.cursor
    changes = writer.changes_since(cursor)
    assert not changes.snapshot and [p.item_id for p in changes.points] == [
        "new100",
        "new101",
        "new102",
    ]
    polls = source.polls
    replica.last_poll = 0.0  # the last poll was long ago (not within MISS_POLL_GAP)
    _, found = replica.lookup(["new101"])  # not copied yet: the miss polls the writer
    assert "new101" in found and source.polls == polls + 1
    assert_same_answer(
        replica.search_at([query(k=N_ITEMS + 3)]), writer.search_at([query(k=N_ITEMS + 3)])
    )


def test_a_reader_further_behind_than_the_feed_gets_the_whole_catalog(
    writer: Catalog, replica: CatalogReplica
) -> None:
    cursor = replica.cursor
    for start in (200, 210):  # 20 points through a feed that keeps 10
        writer.index(*new_items(start, 10))
    changes = writer.changes_since(cursor)
    assert changes.snapshot and len(changes.points) == N_ITEMS + 20
    assert replica.poll()
    assert replica.lookup(["new200", "new219"])[1].keys() == {"new200", "new219"}


def test_snapshots_come_from_the_writers_matrices_one_copy_per_change(writer: Catalog) -> None:
    writer.store.scan = refused_scan  # type: ignore[method-assign]
    first, second = writer.changes_since(None), writer.changes_since(None)
    assert first is second and first.snapshot and len(first.ids) == N_ITEMS
    writer.index(*new_items(400, 2))
    writer.delete(["i3"])
    third = writer.changes_since(None)
    assert third is not first and third.cursor != first.cursor
    assert set(third.ids) == set(first.ids) - {"i3"} | {"new400", "new401"}
    stored = writer.store.get(third.ids)  # the matrices say what the store holds
    for n, item_id in enumerate(third.ids):
        np.testing.assert_allclose(third.matrix[n], stored[item_id].rec, atol=1e-6)
        assert third.scenarios[n] == stored[item_id].scenario


def refused_scan(*_: object, **__: object) -> None:
    raise AssertionError("the store was scanned")


def test_a_new_version_is_taken_whole_and_versions_never_go_back(
    tmp_path: Path, writer: Catalog, replica: CatalogReplica
) -> None:
    rec = Recommender(RecommendConfig(top_k=5, exact_search=True), writer, NoText(), dim=DIM)
    trainer = TrainerService(training(), writer, DIM, background=False)
    trainer.add(rec.recommend(events("u", list(range(25))), {}).samples)
    assert trainer.step(now=1.0) is not None and writer.model.version == 1
    assert replica.lookup([])[0] == 0  # not polled yet
    scan = writer.store.scan
    writer.store.scan = refused_scan  # type: ignore[method-assign]
    assert replica.poll()  # the re-projection's own snapshot: no scan of the store
    writer.store.scan = scan  # type: ignore[method-assign]
    ids = [f"i{n}" for n in range(N_ITEMS)]
    version, mine = replica.lookup(ids)
    _, theirs = writer.lookup(ids)
    assert version == 1
    for item_id in ids:
        np.testing.assert_allclose(mine[item_id], theirs[item_id], atol=1e-6)
    # A restarted writer that answers at an older version (its disk lost) is ignored.
    older = Catalog(
        StoreConfig(url=f"edge:{tmp_path / 'other'}"),
        DIM,
        AdapterStoreConfig(path=tmp_path / "none"),
    )
    try:
        older.index(*catalog_items())
        replica.source = Source(older)
        assert replica.poll() and replica.version() == 1
    finally:
        older.close()


def test_it_keeps_serving_while_the_writer_does_not_answer(
    writer: Catalog, source: Source, replica: CatalogReplica
) -> None:
    source.down = True
    assert replica.poll() is False
    version, found = replica.lookup(["i1", "missing"])  # the miss polls, fails, still answers
    assert version == 0 and found.keys() == {"i1"}
    assert len(replica.search_at([query()])[1][0]) == 5


def test_a_replica_started_while_the_writer_is_down_is_not_ready_until_it_answers(
    source: Source,
) -> None:
    source.down = True
    copy = CatalogReplica(source, DIM, QUIET)
    try:
        assert copy.version() == -1
        with pytest.raises(ReplicaNotReady):
            copy.search_at([query()])
        source.down = False
        assert copy.poll() and copy.version() == 0
    finally:
        copy.close()


def test_the_background_thread_follows_the_writer(writer: Catalog, source: Source) -> None:
    copy = CatalogReplica(source, DIM, StoreConfig(sync_interval=0.05))
    try:
        writer.index(*new_items(300, 2))
        for _ in range(100):
            if copy.cursor == writer.cursor():
                break
            copy.stopped.wait(0.05)
        assert copy.cursor == writer.cursor()
        assert_same_answer(
            copy.search_at([query(k=N_ITEMS + 2)]), writer.search_at([query(k=N_ITEMS + 2)])
        )
    finally:
        copy.close()


def test_a_deleted_item_leaves_the_copy_through_the_change_feed(
    writer: Catalog, replica: CatalogReplica
) -> None:
    cursor = replica.cursor
    items, base = new_items(300, 2)
    writer.index(items, base)
    assert writer.delete(["i0", "new300", "absent"]) == N_ITEMS  # +2 indexed, -2 deleted
    changes = writer.changes_since(cursor)
    assert not changes.snapshot
    assert [p.item_id for p in changes.points] == ["new301"] and changes.removed == ["i0", "new300"]
    assert replica.poll()
    everything = SearchRequest(vector=np.ones(DIM, dtype=np.float32), k=N_ITEMS + 5, exact=True)
    _, (hits,) = replica.search_at([everything])
    assert {"i0", "new300"}.isdisjoint(h.item_id for h in hits) and len(hits) == N_ITEMS
    assert replica.lookup(["i0", "i1"])[1].keys() == {"i1"}
    assert_same_answer(replica.search_at([everything]), writer.search_at([everything]))
    writer.index(*new_items(300, 1))  # indexed again: back in the copy
    assert replica.poll() and "new300" in replica.lookup(["new300"])[1]


def test_a_snapshot_after_a_delete_does_not_hold_the_item(writer: Catalog) -> None:
    writer.delete(["i1"])
    fresh = writer.changes_since(None)
    assert fresh.snapshot and fresh.removed == []
    assert "i1" not in {p.item_id for p in fresh.points} and len(fresh.points) == N_ITEMS - 1


def test_a_replica_caps_the_processs_blas_threads(source: Source) -> None:
    """The exact search is a BLAS product of a few queries: a thread per core (OpenBLAS's
    default in an actor that reserves no CPU) cost 3.7x on two busy cores."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # put back as it was afterwards
        assert blas_threads() == {2}
        copy = CatalogReplica(source, DIM, StoreConfig(sync_interval=3600.0, search_threads=1))
        try:
            assert blas_threads() == {1}
        finally:
            copy.close()
