"""The replica's exact index answers as the Qdrant engine's exact search does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.store import Hit, ItemPoint, SearchRequest, open_store
from workers.store.matrix import QUERY_CHUNK, MatrixIndex

DIM = 12
N = 300


def points(n: int, seed: int = 0, prefix: str = "i") -> list[ItemPoint]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        vec = rng.standard_normal(DIM).astype(np.float32)
        out.append(ItemPoint(f"{prefix}{k}", "books" if k % 3 else "films", "", vec, vec))
    return out


def requests(n: int, seed: int = 1) -> list[SearchRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        excluded = [f"i{j}" for j in rng.choice(N, size=k % 40, replace=False)]
        out.append(
            SearchRequest(
                vector=rng.standard_normal(DIM).astype(np.float32),
                k=(k % 15) + 1,
                scenario=(None, "books", "films")[k % 3],
                exclude=[*excluded, "never-stored"],
                exact=True,
            )
        )
    return out


def ids(hits: list[list[Hit]]) -> list[list[str]]:
    return [[h.item_id for h in row] for row in hits]


def test_same_hits_as_the_engines_exact_search(tmp_path: Path) -> None:
    stored = points(N)
    engine = open_store(f"edge:{tmp_path}", dim=DIM)
    engine.upsert(stored)
    index = MatrixIndex(DIM, capacity=4)  # grows
    index.upsert(stored)
    asked = requests(2 * QUERY_CHUNK + 5)  # more than one chunk
    mine, theirs = index.search(asked), engine.search(asked)
    assert ids(mine) == ids(theirs)
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    for request, hits in zip(asked, mine, strict=True):
        assert not {h.item_id for h in hits} & set(request.exclude)
    engine.close()


def test_exclusion_and_scenario_leave_fewer_than_k() -> None:
    index = MatrixIndex(DIM)
    stored = points(6)  # films: i0, i3; books: the rest
    index.upsert(stored)
    query = stored[0].rec
    hits = index.search([SearchRequest(vector=query, k=10, scenario="films", exclude=["i0"])])
    assert ids(hits) == [["i3"]]
    assert index.search([SearchRequest(vector=query, k=3, scenario="music")]) == [[]]
    assert index.search([SearchRequest(vector=query, k=0)]) == [[]]
    every = index.search([SearchRequest(vector=query, k=10)])[0]
    assert len(every) == 6 and every[0] == Hit("i0", pytest.approx(1.0, abs=1e-6))
    assert [h.score for h in every] == sorted((h.score for h in every), reverse=True)


def test_an_upsert_replaces_vector_and_scenario() -> None:
    index = MatrixIndex(DIM)
    stored = points(5)
    index.upsert(stored)
    moved = ItemPoint("i1", "films", "", stored[4].rec, stored[4].rec)
    index.upsert([moved])
    assert index.count() == 5
    np.testing.assert_allclose(
        index.vectors(["i1"])["i1"], stored[4].rec / np.linalg.norm(stored[4].rec), atol=1e-6
    )
    hits = index.search([SearchRequest(vector=stored[4].rec, k=2, scenario="films")])[0]
    assert [h.item_id for h in hits][:1] == ["i1"]
    assert index.vectors(["i1", "nope"]).keys() == {"i1"}


def test_columns_load_as_points_do_and_the_last_row_of_an_id_wins() -> None:
    stored = points(40)
    by_points, by_columns = MatrixIndex(DIM), MatrixIndex(DIM, capacity=4)
    by_points.upsert(stored[:30])
    by_columns.upsert_columns(
        [p.item_id for p in stored[:30]],
        [p.scenario for p in stored[:30]],
        np.stack([p.rec for p in stored[:30]]),
    )
    again = [*stored[25:40], ItemPoint("i3", "books", "", stored[39].rec, stored[39].rec)]
    by_points.upsert(again)
    by_columns.upsert_columns(
        [p.item_id for p in again], [p.scenario for p in again], np.stack([p.rec for p in again])
    )
    assert by_columns.count() == by_points.count() == 40
    asked = requests(30)
    assert ids(by_columns.search(asked)) == ids(by_points.search(asked))
    got, want = by_columns.vectors(["i3", "i39"]), by_points.vectors(["i3", "i39"])
    np.testing.assert_array_equal(got["i3"], want["i3"])
    np.testing.assert_array_equal(got["i3"], want["i39"])
    with pytest.raises(ValueError, match="scenarios"):
        by_columns.upsert_columns(["a", "b"], ["s"], np.ones((2, DIM)))
    with pytest.raises(ValueError, match="vectors"):
        by_columns.upsert_columns(["a", "b"], ["s", "s"], np.ones((3, DIM)))


def test_a_replica_loads_a_snapshot_without_an_object_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 100k-item snapshot made 100k points twice over in the replica's process, while
    its readers waited on the interpreter lock (BENCHMARKS.md, hot swap): from the
    wire to the index it is now columns only."""
    import pickle

    import workers.catalog
    import workers.store.matrix
    from workers.catalog import Changes, Cursor
    from workers.config import StoreConfig
    from workers.replica import CatalogReplica

    matrix = np.random.default_rng(4).standard_normal((300, DIM)).astype(np.float32)
    ids_ = [f"i{n}" for n in range(300)]
    sent = Changes(Cursor("e", 3, 1), ids_, ["films"] * 300, matrix, snapshot=True)
    wire = pickle.dumps(sent, protocol=5)

    def refused(*_: object, **__: object) -> None:
        raise AssertionError("an object per item")

    monkeypatch.setattr(workers.catalog, "ServingPoint", refused)
    monkeypatch.setattr(workers.store.matrix, "latest_per_id", refused)

    class Wire:
        def changes_since(self, cursor: Cursor | None) -> Changes:
            got: Changes = pickle.loads(wire)
            return got

    replica = CatalogReplica(Wire(), DIM, StoreConfig(sync_interval=3600.0))
    version, (hits,) = replica.search_at([SearchRequest(vector=matrix[7], k=1)])
    assert version == 3 and hits[0].item_id == "i7"
    replica.close()


def test_bad_requests_are_refused() -> None:
    index = MatrixIndex(DIM)
    index.upsert(points(3))
    with pytest.raises(ValueError, match="shape"):
        index.search([SearchRequest(vector=np.ones(DIM + 1, dtype=np.float32), k=1)])
    with pytest.raises(ValueError, match="non-finite"):
        index.search([SearchRequest(vector=np.full(DIM, np.nan, dtype=np.float32), k=1)])
    with pytest.raises(ValueError, match="k must be"):
        index.search([SearchRequest(vector=np.ones(DIM, dtype=np.float32), k=-1)])
    with pytest.raises(ValueError, match="single string"):
        index.search([SearchRequest(vector=np.ones(DIM, dtype=np.float32), k=1, exclude="i0")])
    with pytest.raises(ValueError, match="non-finite"):
        bad = np.full(DIM, np.inf, dtype=np.float32)
        index.upsert([ItemPoint("x", "s", "", bad, bad)])


def test_a_snapshot_travels_as_columns_and_arrives_whole() -> None:
    import pickle

    from workers.catalog import Changes, Cursor, ServingPoint

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((500, DIM)).astype(np.float32)
    points = [ServingPoint(f"i{n}", "films", matrix[n]) for n in range(500)]
    sent = Changes.of_points(Cursor("epoch", 2, 7), points, snapshot=False, removed=["gone"])
    buffers: list[pickle.PickleBuffer] = []  # out of band, as Ray serialises arrays
    wire = pickle.dumps(sent, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1  # one array for all the vectors
    per_point: list[pickle.PickleBuffer] = []
    pickle.dumps(points, protocol=5, buffer_callback=per_point.append)
    assert len(per_point) == 500  # what a plain list of points would have sent
    got = pickle.loads(wire, buffers=buffers)
    assert (got.cursor, got.snapshot, got.removed) == (sent.cursor, False, ["gone"])
    assert [(p.item_id, p.scenario) for p in got.points] == [
        (p.item_id, p.scenario) for p in points
    ]
    np.testing.assert_array_equal(np.stack([p.rec for p in got.points]), matrix)
    empty = pickle.loads(pickle.dumps(Changes.of_points(Cursor("e", 0, 0), [], snapshot=False)))
    assert empty.points == [] and not empty.snapshot


def test_a_deleted_item_is_neither_searched_nor_looked_up_and_rows_stay_consistent() -> None:
    rng = np.random.default_rng(5)
    stored = [
        ItemPoint(f"m{n}", "ab"[n % 2], "", v, v)
        for n, v in enumerate(rng.standard_normal((9, DIM)).astype(np.float32))
    ]
    index = MatrixIndex(DIM, capacity=2)
    index.upsert(stored)
    index.delete(["m0", "m8", "m4", "absent"])  # the first row, the last row, a middle one
    rest = [p for p in stored if p.item_id not in {"m0", "m8", "m4"}]
    assert index.count() == 6
    assert index.vectors(["m0", "m4", "m8", "m1"]).keys() == {"m1"}
    for p in rest:  # every remaining id still maps to its own vector and scenario
        unit = p.rec / np.linalg.norm(p.rec)
        np.testing.assert_allclose(index.vectors([p.item_id])[p.item_id], unit, atol=1e-6)
        (hits,) = index.search([SearchRequest(p.rec, 1, scenario=p.scenario)])
        assert [h.item_id for h in hits] == [p.item_id]
    (everything,) = index.search([SearchRequest(stored[0].rec, 9)])
    assert {h.item_id for h in everything} == {p.item_id for p in rest}
    index.upsert([stored[0]])
    assert index.count() == 7 and "m0" in index.vectors(["m0"])


def _one_by_one(index_points: list[ItemPoint], request: SearchRequest) -> list[str]:
    """The request's hits by the definition: every allowed item scored alone, best first."""
    query = request.vector / np.linalg.norm(request.vector)
    allowed = [
        p
        for p in index_points
        if p.item_id not in set(request.exclude) and request.scenario in (None, p.scenario)
    ]
    scored = sorted(allowed, key=lambda p: -float(query @ (p.rec / np.linalg.norm(p.rec))))
    return [p.item_id for p in scored[: request.k]]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    items=st.integers(0, 40),
    asked=st.integers(1, QUERY_CHUNK + 3),
    scenarios=st.sampled_from([("films",), ("films", "books"), ("films", "books", "music")]),
)
def test_a_chunk_masked_and_ranked_at_once_answers_each_request_as_alone(
    seed: int, items: int, asked: int, scenarios: tuple[str, ...]
) -> None:
    # Requests of mixed k (0 and above the catalog's size included), scenarios (one the
    # catalog lacks included) and exclusions (unknown and repeated ids included).
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((items, DIM)).astype(np.float32)
    stored = [
        ItemPoint(f"i{n}", scenarios[int(rng.integers(len(scenarios)))], "", v, v)
        for n, v in enumerate(vectors)
    ]
    index = MatrixIndex(DIM, capacity=2)
    index.upsert(stored)
    ids_ = [p.item_id for p in stored]
    requests_ = [
        SearchRequest(
            vector=rng.standard_normal(DIM).astype(np.float32),
            k=int(rng.integers(0, items + 3)),
            scenario=[None, *scenarios, "absent"][int(rng.integers(len(scenarios) + 2))],
            exclude=[
                *(
                    ids_[int(j)]
                    for j in rng.integers(0, max(items, 1), int(rng.integers(5)))
                    if items
                ),
                "never-stored",
            ],
        )
        for _ in range(asked)
    ]
    found = index.search(requests_)
    assert ids(list(found)) == [_one_by_one(stored, r) for r in requests_]
    for hits in found:
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_large_catalog_ranks_fewer_rows_at_a_time_with_the_same_hits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.store import matrix

    index = MatrixIndex(DIM)
    index.upsert(points(N))
    asked = requests(QUERY_CHUNK + 9)
    whole = list(index.search(asked))
    # two rows ranked at a time, then fewer scores than items: one at a time
    for scores in (2 * N + 1, 1):
        monkeypatch.setattr(matrix, "RANK_SCORES", scores)
        assert list(index.search(asked)) == whole
