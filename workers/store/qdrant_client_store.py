"""Vector store on ``qdrant-client``: local mode (in memory or in a directory) or a server.

Local mode is the pure-Python engine shipped with the client: exact (brute-force)
search, one process per directory (the client locks it), no payload indexes. Against
a Qdrant server the same code uses the server's HNSW index and a keyword payload
index on ``scenario``.
"""

from __future__ import annotations

import ssl
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models

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

#: Points sent per upsert call (keeps server request bodies well under their limit).
UPSERT_CHUNK = 256


class QdrantClientStore(VectorStore):
    """A :class:`VectorStore` in one collection of a ``QdrantClient``."""

    def __init__(
        self,
        *,
        dim: int,
        collection: str = "items",
        location: str | None = None,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        """Connect and make sure ``collection`` exists with ``base``/``rec`` cosine vectors.

        Give exactly one of ``location`` (``":memory:"``), ``path`` (local mode persisted
        in a directory) or ``url`` (a Qdrant server, with optional ``api_key``). Raises
        :class:`StoreError` if the collection exists with another layout or dimension.
        """
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if sum(arg is not None for arg in (location, path, url)) != 1:
            raise ValueError("give exactly one of location, path or url")
        self.dim = dim
        self.collection = collection
        self._remote = url is not None
        self._api_key = api_key
        try:
            if url is not None:
                # No background version-check thread: opening checks the collection itself.
                # verify: httpx's TLS check of an https server, against ca_file if given.
                verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
                client = QdrantClient(
                    url=url, api_key=api_key, check_compatibility=False, verify=verify
                )
            elif path is not None:
                client = QdrantClient(path=path)
            else:
                client = QdrantClient(location=location)
        except Exception as exc:
            raise self._error(
                f"cannot open Qdrant ({url or path or location})", exc
            ) from self._cause(exc)
        self._client: QdrantClient | None = client
        try:
            self._ensure_collection(client)
        except Exception as exc:
            self.close()
            if isinstance(exc, StoreError):
                raise
            what = f"cannot prepare collection {collection!r}"
            raise self._error(what, exc) from self._cause(exc)

    def _ensure_collection(self, client: QdrantClient) -> None:
        if not client.collection_exists(self.collection):
            params = {
                name: models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
                for name in VECTOR_NAMES
            }
            try:
                client.create_collection(self.collection, vectors_config=params)
            except Exception:
                # Another process may have created it meanwhile; check it below.
                if not client.collection_exists(self.collection):
                    raise
        info = client.get_collection(self.collection)
        vectors = info.config.params.vectors
        layout = (
            {name: (p.size, p.distance) for name, p in vectors.items()}
            if isinstance(vectors, dict)
            else {}
        )
        for name in VECTOR_NAMES:
            if layout.get(name) != (self.dim, models.Distance.COSINE):
                raise StoreError(
                    f"collection {self.collection!r} has vectors {layout or vectors}, expected "
                    f"{VECTOR_NAMES} of size {self.dim} with cosine distance"
                )
        # Local mode ignores keyword indexes (and warns), so only a server gets one.
        if self._remote and SCENARIO_KEY not in info.payload_schema:
            client.create_payload_index(
                self.collection, SCENARIO_KEY, models.PayloadSchemaType.KEYWORD
            )

    def _open_client(self) -> QdrantClient:
        if self._client is None:
            raise StoreError(f"store for collection {self.collection!r} is closed")
        return self._client

    def upsert(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items, waiting until the engine has applied them."""
        client = self._open_client()
        batch = []
        for point in latest_per_id(points):
            vectors: dict[str, models.Vector] = dict(named_vectors(point, self.dim))
            pid = str(point_id(point.item_id))
            batch.append(models.PointStruct(id=pid, vector=vectors, payload=payload_of(point)))
        try:
            for start in range(0, len(batch), UPSERT_CHUNK):
                chunk = batch[start : start + UPSERT_CHUNK]
                client.upsert(self.collection, points=chunk, wait=True)
        except Exception as exc:
            raise self._error(f"upsert of {len(batch)} points failed", exc) from self._cause(exc)

    def update_rec(self, item_ids: Sequence[str], rec: npt.ArrayLike) -> None:
        """Replace stored items' ``rec`` vectors only, waiting until applied."""
        client = self._open_client()
        batch = [
            models.PointVectors(id=str(point_id(item_id)), vector={"rec": vector})
            for item_id, vector in rec_lists(item_ids, rec, self.dim)
        ]
        try:
            for start in range(0, len(batch), UPSERT_CHUNK):
                chunk = batch[start : start + UPSERT_CHUNK]
                client.update_vectors(self.collection, points=chunk, wait=True)
        except Exception as exc:
            raise self._error(f"update of {len(batch)} rec vectors failed", exc) from self._cause(
                exc
            )

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove items (absent ids are ignored), waiting until the engine has applied it."""
        client = self._open_client()
        ids: list[models.ExtendedPointId] = [str(point_id(i)) for i in dict.fromkeys(item_ids)]
        if not ids:
            return
        try:
            for start in range(0, len(ids), UPSERT_CHUNK):
                chunk = ids[start : start + UPSERT_CHUNK]
                client.delete(self.collection, points_selector=chunk, wait=True)
        except Exception as exc:
            raise StoreError(f"delete of {len(ids)} points failed: {exc}") from exc

    def vectors(
        self, item_ids: Sequence[str], using: str = "rec"
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Return the stored (unit-length) ``using`` vectors of the present ids."""
        client = self._open_client()
        check_using(using)
        by_point = {str(point_id(item_id)): item_id for item_id in item_ids}
        if not by_point:
            return {}
        try:
            records = client.retrieve(
                self.collection, ids=list(by_point), with_payload=False, with_vectors=[using]
            )
        except Exception as exc:
            raise self._error(f"retrieve of {len(by_point)} points failed", exc) from self._cause(
                exc
            )
        return collect_vectors(records, by_point, using)

    def get(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """Return the whole stored point of each present id."""
        client = self._open_client()
        ids: list[models.ExtendedPointId] = [
            str(point_id(item_id)) for item_id in dict.fromkeys(item_ids)
        ]
        if not ids:
            return {}
        try:
            records = client.retrieve(
                self.collection, ids=ids, with_payload=True, with_vectors=True
            )
        except Exception as exc:
            raise self._error(f"retrieve of {len(ids)} points failed", exc) from self._cause(exc)
        return points_by_id(records)

    def scan(self, batch: int = 1000) -> Iterator[list[ItemPoint]]:
        """Yield every stored item in pages of ``batch``."""
        client = self._open_client()

        def scroll(offset: Any) -> tuple[Sequence[Any], Any]:
            records, nxt = client.scroll(
                self.collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
            )
            return records, nxt

        return scroll_pages(scroll)

    def _query(self, request: SearchRequest) -> models.QueryRequest:
        q = CheckedQuery.of(request, self.dim)
        must: list[models.Condition] = []
        must_not: list[models.Condition] = []
        if q.scenario is not None:
            match = models.MatchValue(value=q.scenario)
            must.append(models.FieldCondition(key=SCENARIO_KEY, match=match))
        if q.excluded:
            excluded: list[models.ExtendedPointId] = [str(p) for p in q.excluded]
            must_not.append(models.HasIdCondition(has_id=excluded))
        query_filter = models.Filter(must=must or None, must_not=must_not or None)
        return models.QueryRequest(
            query=q.vector,
            using=q.using,
            limit=q.limit,
            filter=query_filter if must or must_not else None,
            with_payload=[ITEM_ID_KEY],
            with_vector=False,
            # Local mode is always exact (and warns about search params).
            params=models.SearchParams(exact=True) if q.exact and self._remote else None,
        )

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run all requests in one ``query_batch_points`` call."""
        client = self._open_client()

        def execute(queries: list[models.QueryRequest]) -> list[list[tuple[Any, float]]]:
            responses = client.query_batch_points(self.collection, requests=queries)
            return [[(p.payload, p.score) for p in r.points] for r in responses]

        try:
            return batched_search(requests, self._query, execute)
        except StoreError as exc:
            raise self._error("search failed", exc) from self._cause(exc)

    def count(self) -> int:
        """Return the exact number of stored items."""
        client = self._open_client()
        try:
            return client.count(self.collection, exact=True).count
        except Exception as exc:
            raise self._error("count failed", exc) from self._cause(exc)

    def _error(self, what: str, exc: BaseException) -> StoreError:
        """A StoreError for ``exc`` whose message never carries the API key: a server may
        echo a request's headers in its answer, and the error reaches logs and dead
        letters. Raise it ``from self._cause(exc)``."""
        text = f"{what}: {exc}"
        key = self._api_key
        return StoreError(text.replace(key, "<api key>") if key else text)

    def _cause(self, exc: BaseException) -> BaseException | None:
        """``exc``, or None where its chain mentions the API key (Ray ships an actor's
        traceback, causes included, to the caller, whose logs would show it)."""
        key = self._api_key
        if key and key in "".join(traceback.format_exception(exc)):
            return None
        return exc

    def close(self) -> None:
        """Close the client (releasing a local directory's lock); idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
