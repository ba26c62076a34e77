"""Vector-store interface shared by every backend.

An item is stored as one Qdrant point with two named cosine vectors of the same
dimension: ``base`` (the frozen language-model vector, kept so later adapters can
re-project without re-encoding) and ``rec`` (the vector recommendations search on).
The payload holds ``item_id``, ``scenario`` and ``text``.

Qdrant point ids must be unsigned integers or UUIDs, so every backend maps an
``item_id`` to :func:`point_id` (a UUIDv5 in a fixed namespace) and keeps the
original id in the payload.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

import numpy as np
import numpy.typing as npt

Q = TypeVar("Q")

#: Names of the two vectors every item carries.
VECTOR_NAMES: Final[tuple[str, str]] = ("base", "rec")

#: Payload key on which searches filter by scenario (keyword-indexed where supported).
SCENARIO_KEY: Final = "scenario"

#: Payload key that keeps the caller's item id.
ITEM_ID_KEY: Final = "item_id"

#: Namespace of the item id -> point id mapping. Never change it: stored points
#: would no longer be found by their item ids.
POINT_ID_NAMESPACE: Final = uuid.UUID("6f1c5a0e-3b7d-5e2a-9c44-7d2b1e0f8a31")


@dataclass(frozen=True)
class ItemPoint:
    """One item to store: its id, scenario, text and both named vectors (shape ``(dim,)``)."""

    item_id: str
    scenario: str
    text: str
    base: npt.NDArray[np.float32]
    rec: npt.NDArray[np.float32]


@dataclass(frozen=True)
class SearchRequest:
    """A nearest-neighbour query.

    ``vector`` has shape ``(dim,)`` and need not be normalised. At most ``k`` hits are
    returned; ``scenario`` restricts them to one scenario (``None``: any); ids in
    ``exclude`` are never returned; ``using`` names the vector searched on.
    """

    vector: npt.NDArray[np.float32]
    k: int
    scenario: str | None = None
    exclude: Sequence[str] = ()
    using: str = "rec"
    exact: bool = False  # brute force instead of the HNSW index (evaluation, small catalogs)


@dataclass(frozen=True)
class Hit:
    """One search result: the item id and its cosine similarity to the query."""

    item_id: str
    score: float


class StoreError(RuntimeError):
    """The store could not be opened or an engine operation failed."""


def point_id(item_id: str) -> uuid.UUID:
    """Return the Qdrant point id of ``item_id`` (deterministic UUIDv5)."""
    return uuid.uuid5(POINT_ID_NAMESPACE, item_id)


def check_using(using: str) -> str:
    """Return ``using`` if it names a stored vector, else raise ``ValueError``."""
    if using not in VECTOR_NAMES:
        raise ValueError(f"unknown vector name {using!r}; expected one of {VECTOR_NAMES}")
    return using


def unit_vector(vector: npt.ArrayLike, dim: int, what: str) -> npt.NDArray[np.float32]:
    """Validate a ``(dim,)`` finite vector and return it L2-normalised, as a new array
    (a zero vector stays zero)."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (dim,):
        raise ValueError(f"{what}: expected shape ({dim},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: vector has non-finite values")
    norm = float(np.linalg.norm(arr))
    return arr / np.float32(norm) if norm > 0.0 else arr.copy()


def vector_list(vector: npt.ArrayLike, dim: int, what: str) -> list[float]:
    """`unit_vector` as a new list.

    The list is a copy, so engines that normalise in place never touch caller arrays.
    Normalising here (all collections are cosine) also keeps the stored form the same
    everywhere: qdrant-client 1.20 local mode persists vectors as given and, after a
    reopen, returns them un-normalised from ``retrieve``.
    """
    values: list[float] = unit_vector(vector, dim, what).tolist()
    return values


def checked_unit_rows(matrix: npt.ArrayLike, dim: int, what: str) -> npt.NDArray[np.float32]:
    """Rows checked (shape ``(n, dim)``, finite) and L2-normalised (zero rows stay zero),
    as a new array. One pass for the squared norms (a NaN or an infinity makes its row's
    sum non-finite), one for the scaling: 100k rows of 384 in ~0.1 s, not ~0.2 s."""
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"{what}: expected shape (n, {dim}), got {rows.shape}")
    squares = np.einsum("ij,ij->i", rows, rows)
    if not np.isfinite(squares).all():
        if not np.isfinite(rows).all():
            raise ValueError(f"{what}: vector has non-finite values")
        squares = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)  # finite, but huge
    norms = np.sqrt(squares)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit: npt.NDArray[np.float32] = rows * scale.astype(np.float32)[:, None]
    return unit


def rec_lists(
    item_ids: Sequence[str], rec: npt.ArrayLike, dim: int
) -> list[tuple[str, list[float]]]:
    """(item_id, checked unit ``rec`` list) pairs for `VectorStore.update_rec`, all rows
    normalised at once (row by row, 100k rows took ~5.6 s of a re-projection)."""
    rows = np.asarray(rec, dtype=np.float32)
    if rows.ndim != 2 or len(rows) != len(item_ids):
        raise ValueError(f"{len(item_ids)} item ids but rec of shape {rows.shape}")
    if len(set(item_ids)) != len(item_ids):
        raise ValueError("update_rec needs distinct item ids")
    lists: list[list[float]] = checked_unit_rows(rows, dim, "rec vectors").tolist()
    return list(zip(item_ids, lists, strict=True))


def latest_per_id(points: Sequence[ItemPoint]) -> list[ItemPoint]:
    """Drop all but the last record of each item id, keeping first-seen order."""
    latest: dict[str, ItemPoint] = {}
    for point in points:
        latest.pop(point.item_id, None)
        latest[point.item_id] = point
    return list(latest.values())


def payload_of(point: ItemPoint) -> dict[str, str]:
    """Return the payload stored with ``point``."""
    return {ITEM_ID_KEY: point.item_id, SCENARIO_KEY: point.scenario, "text": point.text}


def exclude_ids(exclude: Sequence[str]) -> set[uuid.UUID]:
    """Return the point ids of the excluded item ids (a bare string is rejected)."""
    if isinstance(exclude, str):
        raise ValueError("exclude must be a sequence of item ids, not a single string")
    return {point_id(item_id) for item_id in exclude}


def hit_from(payload: Mapping[str, Any] | None, score: float) -> Hit:
    """Build a :class:`Hit` from a scored point's payload and score."""
    if not payload or ITEM_ID_KEY not in payload:
        raise StoreError(f"stored point has no {ITEM_ID_KEY!r} in its payload")
    return Hit(item_id=str(payload[ITEM_ID_KEY]), score=float(score))


def named_vectors(point: ItemPoint, dim: int) -> dict[str, list[float]]:
    """An item's checked, unit-length ``base`` and ``rec`` vectors as engine lists."""
    return {
        "base": vector_list(point.base, dim, f"base of {point.item_id!r}"),
        "rec": vector_list(point.rec, dim, f"rec of {point.item_id!r}"),
    }


def point_from(record: Any) -> ItemPoint | None:
    """A retrieved/scrolled record (payload + both vectors) -> `ItemPoint` (None if partial)."""
    payload, stored = record.payload, record.vector
    if not payload or ITEM_ID_KEY not in payload or not isinstance(stored, dict):
        return None
    if any(name not in stored for name in VECTOR_NAMES):
        return None
    return ItemPoint(
        item_id=str(payload[ITEM_ID_KEY]),
        scenario=str(payload.get(SCENARIO_KEY, "default")),
        text=str(payload.get("text", "")),
        base=np.asarray(stored["base"], dtype=np.float32),
        rec=np.asarray(stored["rec"], dtype=np.float32),
    )


def points_by_id(records: Iterable[Any]) -> dict[str, ItemPoint]:
    """Retrieved records -> {item_id: ItemPoint} (partial records left out)."""
    found = (point_from(r) for r in records)
    return {p.item_id: p for p in found if p is not None}


def scroll_pages(
    scroll: Callable[[Any], tuple[Sequence[Any], Any]],
) -> Iterator[list[ItemPoint]]:
    """Page through an engine's scroll: ``scroll(offset) -> (records, next offset)``,
    starting at None and ending when the next offset is None; engine errors become
    `StoreError`."""
    offset: Any = None
    while True:
        try:
            records, offset = scroll(offset)
        except Exception as exc:
            raise StoreError(f"scroll failed: {exc}") from exc
        page = list(points_by_id(records).values())
        if page:
            yield page
        if offset is None:
            return


def collect_vectors(
    records: Iterable[Any], by_point: Mapping[str, str], using: str
) -> dict[str, npt.NDArray[np.float32]]:
    """Retrieved records (``.id``, ``.vector`` as {name: list}) -> {item_id: vector}."""
    found: dict[str, npt.NDArray[np.float32]] = {}
    for record in records:
        stored = record.vector
        item_id = by_point.get(str(record.id))
        if item_id is None or not isinstance(stored, dict) or using not in stored:
            continue
        found[item_id] = np.asarray(stored[using], dtype=np.float32)
    return found


@dataclass(frozen=True)
class CheckedQuery:
    """A search request validated for a store of dimension ``dim``."""

    limit: int
    vector: list[float]
    using: str
    scenario: str | None
    excluded: set[uuid.UUID]
    exact: bool

    @classmethod
    def of(cls, request: SearchRequest, dim: int) -> CheckedQuery:
        return cls(
            limit=check_k(request.k),
            vector=vector_list(request.vector, dim, "search vector"),
            using=check_using(request.using),
            scenario=request.scenario,
            excluded=exclude_ids(request.exclude),
            exact=bool(request.exact),
        )


def batched_search(
    requests: Sequence[SearchRequest],
    build: Callable[[SearchRequest], Q],
    execute: Callable[[list[Q]], Sequence[Sequence[tuple[Mapping[str, Any] | None, float]]]],
) -> list[list[Hit]]:
    """One engine query per request (all validated), the k > 0 ones run in one call.

    ``execute(queries)`` returns, per query, its (payload, score) pairs best first.
    """
    results: list[list[Hit]] = [[] for _ in requests]
    slots: list[int] = []
    queries: list[Q] = []
    for slot, request in enumerate(requests):
        query = build(request)
        if request.k > 0:
            slots.append(slot)
            queries.append(query)
    if not queries:
        return results
    try:
        answers = execute(queries)
    except Exception as exc:
        raise StoreError(f"batch search of {len(queries)} queries failed: {exc}") from exc
    for slot, scored in zip(slots, answers, strict=True):
        results[slot] = [hit_from(payload, score) for payload, score in scored]
    return results


def check_k(k: int) -> int:
    """Return ``k`` if it is a non-negative int, else raise ``ValueError``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    return k


class VectorStore(ABC):
    """A collection of items with ``base`` and ``rec`` cosine vectors of size ``dim``.

    Implementations are not thread-safe; use one instance per thread or guard it.
    """

    dim: int

    @abstractmethod
    def upsert(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items; a later record for an id replaces the earlier one."""

    @abstractmethod
    def update_rec(self, item_ids: Sequence[str], rec: npt.ArrayLike) -> None:
        """Replace the ``rec`` vector of stored items (row n of ``rec`` is ``item_ids[n]``'s;
        distinct ids); their payload and ``base`` vector stay. An id that is not stored is
        an error (`StoreError`): the catalog's re-projection names only what it holds."""

    @abstractmethod
    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove items (absent ids are ignored): no longer searched, looked up or scanned."""

    @abstractmethod
    def vectors(
        self, item_ids: Sequence[str], using: str = "rec"
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Return the stored ``using`` vector of each present id (absent ids are left out).

        Cosine collections store vectors L2-normalised, so these are unit vectors.
        """

    @abstractmethod
    def get(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """Return the whole stored point (payload, ``base`` and ``rec``) of each present id."""

    @abstractmethod
    def scan(self, batch: int = 1000) -> Iterator[list[ItemPoint]]:
        """Yield every stored item, ``batch`` at a time (for re-projecting the catalog)."""

    @abstractmethod
    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run the requests as one batch: one hit list per request, best first, ``<= k`` long."""

    @abstractmethod
    def count(self) -> int:
        """Return the number of stored items."""

    def bulk(self) -> AbstractContextManager[None]:
        """A context for many upserts in a row: an engine that maintains its index as it
        goes may defer that to the end (default: nothing deferred)."""
        return nullcontext()

    @abstractmethod
    def close(self) -> None:
        """Release files and locks; calling it again does nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
