"""Compact forms of what crosses an actor boundary on every micro-batch.

Ray pickles every object of an answer, and every numpy array as a buffer of its own:
a {item_id: vector} dict of 600 vectors, or 256 top-10 lists of `Hit`, cost 10-16 ms a
call on these cores, against ~1-2 ms for the same numbers as one matrix (or one flat
array) and one list of ids (BENCHMARKS.md, 2026-12-01, session 17). These classes hold
their content in that flat form and pickle as it; readers see the usual mapping or
sequence. Pure: no I/O, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from workers.store.base import Hit, SearchRequest

Vector = npt.NDArray[np.float32]


class VectorMap(Mapping[str, Vector]):
    """{item_id: vector} as one float32 matrix (row n is ``ids[n]``'s vector); the
    vectors handed out are read-only rows of it."""

    def __init__(self, ids: Sequence[str], matrix: npt.NDArray[np.float32]) -> None:
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids but {len(matrix)} vectors")
        self._ids = list(ids)
        self._matrix = matrix
        self._matrix.flags.writeable = False
        self._row = {item_id: n for n, item_id in enumerate(self._ids)}

    def __getitem__(self, item_id: str) -> Vector:
        row: Vector = self._matrix[self._row[item_id]]
        return row

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __reduce__(self) -> tuple[Any, ...]:
        return (VectorMap, (self._ids, np.array(self._matrix)))


class HitLists(Sequence[list[Hit]]):
    """Many requests' top-k lists, best first, as one list of ids, one float64 array of
    scores (the scores a search computed, exactly) and each list's length."""

    def __init__(
        self, ids: Sequence[str], scores: npt.NDArray[np.float64], counts: Sequence[int]
    ) -> None:
        if len(ids) != len(scores) or sum(counts) != len(ids):
            raise ValueError("ids, scores and counts disagree")
        self._ids = list(ids)
        self._scores = scores
        self._counts = [int(c) for c in counts]
        self._starts = np.concatenate([[0], np.cumsum(self._counts, dtype=np.int64)]).tolist()

    @classmethod
    def of(cls, lists: Sequence[Sequence[Hit]]) -> HitLists:
        if isinstance(lists, HitLists):
            return lists
        return cls.of_pairs([[(h.item_id, h.score) for h in hits] for hits in lists])

    @classmethod
    def of_pairs(cls, lists: Sequence[Sequence[tuple[str, float]]]) -> HitLists:
        ids = [item_id for pairs in lists for item_id, _ in pairs]
        scores = np.array([score for pairs in lists for _, score in pairs], dtype=np.float64)
        return cls(ids, scores, [len(pairs) for pairs in lists])

    def pairs(self, n: int) -> list[tuple[str, float]]:
        """List ``n`` as (item_id, score) pairs."""
        start, end = self._starts[n], self._starts[n + 1]
        return list(zip(self._ids[start:end], self._scores[start:end].tolist(), strict=True))

    def __getitem__(self, n: int) -> list[Hit]:  # type: ignore[override]
        if not -len(self) <= n < len(self):
            raise IndexError(n)
        return [Hit(i, s) for i, s in self.pairs(n % len(self))]

    def __len__(self) -> int:
        return len(self._counts)

    def __eq__(self, other: object) -> bool:  # as the list of lists it stands for
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (HitLists, (self._ids, self._scores, self._counts))


class SearchRequests(list[SearchRequest]):
    """A call's search requests that pickle as columns, their vectors as one matrix per
    length."""

    def __reduce__(self) -> tuple[Any, ...]:
        columns = [(r.k, r.scenario, tuple(r.exclude), r.using, r.exact) for r in self]
        return (_requests_from, (columns, stacked([r.vector for r in self])))


def _requests_from(
    columns: list[tuple[Any, ...]], groups: list[tuple[list[int], Vector]]
) -> SearchRequests:
    vectors = unstacked(groups, len(columns))
    return SearchRequests(
        SearchRequest(vector, k, scenario, exclude, using, exact)
        for vector, (k, scenario, exclude, using, exact) in zip(vectors, columns, strict=True)
    )


def stacked(vectors: Sequence[Vector]) -> list[tuple[list[int], Vector]]:
    """Vectors as one matrix per length: [(their positions, matrix)]."""
    by_length: dict[int, list[int]] = {}
    for n, vector in enumerate(vectors):
        by_length.setdefault(len(vector), []).append(n)
    return [(rows, np.stack([vectors[n] for n in rows])) for rows in by_length.values()]


def unstacked(groups: Sequence[tuple[Sequence[int], Vector]], count: int) -> list[Vector]:
    """`stacked`'s inverse: ``count`` vectors, read-only rows of the matrices."""
    out: list[Vector | None] = [None] * count
    for rows, matrix in groups:
        matrix.flags.writeable = False
        for row, n in enumerate(rows):
            out[n] = matrix[row]
    if any(v is None for v in out):
        raise ValueError("a position has no vector")
    return out  # type: ignore[return-value]
