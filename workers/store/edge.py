"""In-process vector store on Qdrant Edge (``qdrant-edge-py``).

The store is one Edge shard in a directory: created when the directory holds no
shard, loaded otherwise. The shard's files are locked while it is open, so a
second open of the same directory (in this or another process) fails with
:class:`StoreError` until :meth:`EdgeStore.close`.

Durability (qdrant-edge-py 0.9.0, checked with strace and a SIGKILL test):

* ``EdgeShard.update`` appends the operation to the shard's write-ahead log before
  it returns. The WAL is a memory-mapped file and the append issues no syscall and
  no fsync, so an upsert that returned survives a kill of the process (the data
  sits in the kernel page cache and is replayed on load; verified: upsert,
  SIGKILL, load sees every point) but not an OS crash or power loss.
* ``EdgeShard.flush()`` msyncs and fsyncs the WAL and the segments; ``close()``
  flushes too. :meth:`EdgeStore.flush` exposes it for callers that need
  durability against power loss at a point in time (it costs ~0.1-0.2 s at 10k
  points of dim 384, so it is not done on every upsert).
* The WAL is truncated only by a flush: without one it grows by every upsert for
  good (a catalog of 1.7k items re-projected at every model version reached 2.2 GB
  of WAL in 35 minutes of a soak). The store flushes after every ``flush_every``
  upserted points (20,000 by default), which bounds it (~64 MB measured).

Indexing: none beyond the scenario's payload index. The shard builds no HNSW graph
(``m`` = 0), so every search is an exact scan, as the read replicas' are. This store is
the catalog writer's, which nobody searches per event (recommenders search their
node's replica, `workers.replica`), while the graph cost every re-projection of the
catalog most of its time: at 100k items the engine's build took 240 s on both cores
of the project machine (478 CPU-seconds, two vectors per point), against 1.2 s
without it, and its answers missed 170 of 500 exact top-10 hits at 8k random points
(docs/ENVIRONMENT-NOTES.md). Edge runs no background optimizer;
``EdgeShard.optimize()`` blocks (holding the GIL) while it merges and vacuums
segments. A call with nothing to do costs tens of microseconds, so the store calls
it after every ``optimize_every`` upserted points, and :meth:`EdgeStore.optimize`
lets a caller do it at a quiet moment, e.g. after a bulk load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from workers.store.base import (
    ITEM_ID_KEY,
    SCENARIO_KEY,
    VECTOR_NAMES,
    CheckedQuery,
    Hit,
    ItemPoint,
    SearchRequest,
    StoreError,
    VectorStore,
    batched_search,
    check_using,
    collect_vectors,
    latest_per_id,
    named_vectors,
    payload_of,
    point_id,
    points_by_id,
    rec_lists,
    scroll_pages,
)

#: Points per engine call of `EdgeStore.update_rec`.
_UPDATE_PAGE = 1000

#: Files whose presence means the directory already holds a shard.
_SHARD_MARKERS = ("edge_config.json", "segments", "wal")


#: No HNSW graph (``m`` = 0): every search of the shard is an exact scan (section above).
_NO_GRAPH = qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)


def _config(dim: int) -> qe.EdgeConfig:
    vectors = {
        name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine) for name in VECTOR_NAMES
    }
    return qe.EdgeConfig(vectors=vectors, hnsw_config=_NO_GRAPH)


class EdgeStore(VectorStore):
    """A :class:`VectorStore` kept in an in-process Qdrant Edge shard at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dim: int,
        optimize_every: int = 1000,
        flush_every: int = 20_000,
    ) -> None:
        """Open the shard at ``path`` (creating it if absent) for vectors of size ``dim``.

        ``optimize_every`` is how many upserted points trigger an ``optimize()``
        call (0 disables it); ``flush_every`` how many trigger a ``flush()``, which
        also lets the engine truncate its write-ahead log (0: never). Raises
        :class:`StoreError` if the shard cannot be opened, is locked by another
        instance, or was created with another dimension or other vector names.
        """
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.path = Path(path)
        self._optimize_every = optimize_every
        self._pending = 0
        self._flush_every = flush_every
        self._unflushed = 0
        config = _config(dim)
        exists = any((self.path / marker).exists() for marker in _SHARD_MARKERS)
        try:
            if exists:
                shard = qe.EdgeShard.load(str(self.path), config)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(self.path), config)
        except Exception as exc:
            raise StoreError(
                f"cannot open Qdrant Edge shard at {self.path} with vectors "
                f"{VECTOR_NAMES} of dim {dim}: {exc}"
            ) from exc
        self._shard: qe.EdgeShard | None = shard
        try:
            if SCENARIO_KEY not in shard.info().payload_schema:
                index = qe.UpdateOperation.create_field_index(
                    SCENARIO_KEY, qe.PayloadSchemaType.Keyword
                )
                shard.update(index)
        except Exception as exc:
            self.close()
            raise StoreError(f"cannot index {SCENARIO_KEY!r} in {self.path}: {exc}") from exc

    def _open_shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(f"store at {self.path} is closed")
        return self._shard

    def upsert(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items (written to the WAL before returning; see module doc)."""
        shard = self._open_shard()
        batch = []
        for point in latest_per_id(points):
            vectors: dict[str, qe.NamedVector] = dict(named_vectors(point, self.dim))
            batch.append(qe.Point(point_id(point.item_id), vectors, payload_of(point)))
        if not batch:
            return
        try:
            shard.update(qe.UpdateOperation.upsert_points(batch))
        except Exception as exc:
            raise StoreError(f"upsert of {len(batch)} points failed: {exc}") from exc
        self._counted(len(batch))

    def _counted(self, written: int) -> None:
        """Upkeep after ``written`` points were written: optimize and flush when due."""
        self._pending += written
        self._unflushed += written
        if self._optimize_every > 0 and self._pending >= self._optimize_every:
            self.optimize()
        if self._flush_every > 0 and self._unflushed >= self._flush_every:
            self.flush()

    def update_rec(self, item_ids: Sequence[str], rec: npt.ArrayLike) -> None:
        """Replace stored items' ``rec`` vectors only (the engine's ``update_vectors``: at
        100k items 6.4 s, against 12.8 s to upsert the whole points again)."""
        shard = self._open_shard()
        pairs = rec_lists(item_ids, rec, self.dim)
        for start in range(0, len(pairs), _UPDATE_PAGE):
            page = [
                qe.PointVectors(point_id(item_id), {"rec": vector})
                for item_id, vector in pairs[start : start + _UPDATE_PAGE]
            ]
            try:
                shard.update(qe.UpdateOperation.update_vectors(page))
            except Exception as exc:
                raise StoreError(f"update of {len(page)} rec vectors failed: {exc}") from exc
            self._counted(len(page))

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove items (absent ids are ignored; written to the WAL before returning)."""
        shard = self._open_shard()
        ids: list[qe.PointId] = [point_id(i) for i in dict.fromkeys(item_ids)]
        if not ids:
            return
        try:
            shard.update(qe.UpdateOperation.delete_points(ids))
        except Exception as exc:
            raise StoreError(f"delete of {len(ids)} points failed: {exc}") from exc

    def vectors(
        self, item_ids: Sequence[str], using: str = "rec"
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Return the stored (unit-length) ``using`` vectors of the present ids."""
        shard = self._open_shard()
        check_using(using)
        by_point = {str(point_id(item_id)): item_id for item_id in item_ids}
        if not by_point:
            return {}
        ids: list[qe.PointId] = [point_id(item_id) for item_id in by_point.values()]
        try:
            records = shard.retrieve(ids, False, [using])
        except Exception as exc:
            raise StoreError(f"retrieve of {len(ids)} points failed: {exc}") from exc
        return collect_vectors(records, by_point, using)

    def get(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """Return the whole stored point of each present id."""
        shard = self._open_shard()
        ids: list[qe.PointId] = [point_id(item_id) for item_id in dict.fromkeys(item_ids)]
        if not ids:
            return {}
        try:
            records = shard.retrieve(ids, True, True)
        except Exception as exc:
            raise StoreError(f"retrieve of {len(ids)} points failed: {exc}") from exc
        return points_by_id(records)

    def scan(self, batch: int = 1000) -> Iterator[list[ItemPoint]]:
        """Yield every stored item in pages of ``batch`` (point-id order)."""
        shard = self._open_shard()

        def scroll(offset: Any) -> tuple[Sequence[Any], Any]:
            request = qe.ScrollRequest(
                offset=offset, limit=batch, with_payload=True, with_vector=True
            )
            records, nxt = shard.scroll(request)
            return records, nxt

        return scroll_pages(scroll)

    def _query(self, request: SearchRequest) -> qe.QueryRequest:
        q = CheckedQuery.of(request, self.dim)
        must: list[qe.ConditionType] = []
        must_not: list[qe.ConditionType] = []
        if q.scenario is not None:
            must.append(qe.FieldCondition(key=SCENARIO_KEY, match=qe.MatchValue(q.scenario)))
        if q.excluded:
            excluded: set[qe.PointId] = set(q.excluded)
            must_not.append(qe.HasIdCondition(excluded))
        query_filter = qe.Filter(must=must or None, must_not=must_not or None)
        return qe.QueryRequest(
            limit=q.limit,
            query=qe.Query.Nearest(q.vector, using=q.using),
            filter=query_filter if must or must_not else None,
            with_payload=[ITEM_ID_KEY],
            with_vector=False,
            params=qe.SearchParams(exact=True) if q.exact else None,
        )

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run all requests in one ``query_batch`` call (exact: the shard has no graph)."""
        shard = self._open_shard()

        def execute(queries: list[qe.QueryRequest]) -> list[list[tuple[Any, float]]]:
            batches = shard.query_batch(qe.QueryBatchRequest(queries))
            return [[(p.payload, p.score) for p in scored] for scored in batches]

        return batched_search(requests, self._query, execute)

    def count(self) -> int:
        """Return the exact number of stored items."""
        shard = self._open_shard()
        try:
            return shard.count(qe.CountRequest(exact=True))
        except Exception as exc:
            raise StoreError(f"count failed: {exc}") from exc

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Upserts inside it run no ``optimize()``; one runs at the end if any were due."""
        every, self._optimize_every = self._optimize_every, 0
        try:
            yield
        finally:
            self._optimize_every = every
            if every > 0 and self._pending >= every:
                self.optimize()

    def optimize(self) -> bool:
        """Run the engine's optimizers now (merge, vacuum); True if anything changed."""
        shard = self._open_shard()
        self._pending = 0
        try:
            return shard.optimize()
        except Exception as exc:
            raise StoreError(f"optimize failed: {exc}") from exc

    def flush(self) -> None:
        """Sync the WAL and segments to disk, surviving an OS crash from here on."""
        shard = self._open_shard()
        self._unflushed = 0
        try:
            shard.flush()
        except Exception as exc:
            raise StoreError(f"flush failed: {exc}") from exc

    def close(self) -> None:
        """Flush and close the shard, releasing its lock; idempotent."""
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.close()
