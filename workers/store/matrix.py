"""An exact in-memory cosine index over one float32 matrix: what a node's catalog
replica serves from.

Search is brute force (one matrix product per batch of queries) with the scenario
filter and the excluded ids applied as masks before the top-k, so the top-k and the
exclusion are exact. Measured on 2 cores (BENCHMARKS.md): at 1.7k items 0.03 ms a
query against ~1 ms for the in-process Qdrant engine's own exact search or its
``must_not has_id`` filter, whose per-query overhead dominates at catalog sizes like
these; at 20k items 0.45 ms. The catalog writer keeps the persistent Qdrant
collection; this is a read copy.

Pure computation (numpy, no I/O), not thread-safe: the replica serialises access.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat

import numpy as np
import numpy.typing as npt

from workers.store.base import (
    ItemPoint,
    SearchRequest,
    check_k,
    check_using,
    checked_unit_rows,
    latest_per_id,
)
from workers.wire import HitLists, VectorMap

#: Queries scored per matrix product (bounds the temporary score matrix; fewer would
#: read a large catalog's matrix more often: 2.5 times slower at 100k items in 10s).
QUERY_CHUNK = 64
#: Scores ranked at once, at most (fewer rows of a chunk at a time in a large catalog):
#: the ranking's index matrix takes 8 bytes a score (~8 MiB).
RANK_SCORES = 1 << 20


#: No hits' scores.
NO_SCORES: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)


class MatrixIndex:
    """Items' ``rec`` vectors (L2-normalised rows) with their scenarios."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._matrix = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._scenario = np.zeros(max(1, capacity), dtype=np.int32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._scenario_code: dict[str, int] = {}

    def count(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def columns(self) -> tuple[list[str], list[str], npt.NDArray[np.float32]]:
        """(ids, scenarios, unit rows) of every item, row n being ``ids[n]``'s: copies."""
        names = {code: name for name, code in self._scenario_code.items()}
        n = len(self._ids)
        scenarios = [names[int(code)] for code in self._scenario[:n]]
        return list(self._ids), scenarios, self._matrix[:n].copy()

    def upsert(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items (the last record of an id wins); see `upsert_columns`."""
        latest = latest_per_id(points)
        if latest:
            self.upsert_columns(
                [p.item_id for p in latest],
                [p.scenario for p in latest],
                np.stack([p.rec for p in latest]),
            )

    def upsert_columns(
        self, item_ids: Sequence[str], scenarios: Sequence[str], matrix: npt.ArrayLike
    ) -> None:
        """Insert or replace items given as columns (row n of ``matrix`` is
        ``item_ids[n]``'s rec vector; the last row of a repeated id wins). All are
        checked before any is written, and the whole load is array operations and
        C-level comprehensions: a snapshot of 100k items makes no object per item."""
        if len(item_ids) != len(scenarios):
            raise ValueError(f"{len(item_ids)} item ids but {len(scenarios)} scenarios")
        if not item_ids:
            return
        rows = checked_unit_rows(matrix, self.dim, "item vectors")
        if len(rows) != len(item_ids):
            raise ValueError(f"{len(item_ids)} item ids but {len(rows)} vectors")
        last = dict(zip(item_ids, range(len(item_ids)), strict=True))  # the last row wins
        if len(last) < len(item_ids):
            keep = list(last.values())
            item_ids, scenarios, rows = list(last), [scenarios[n] for n in keep], rows[keep]
        for name in dict.fromkeys(scenarios):
            self._scenario_code.setdefault(name, len(self._scenario_code))
        codes = self._scenario_code
        scenario = np.fromiter((codes[n] for n in scenarios), np.int32, len(scenarios))
        if not self._ids:  # a snapshot into an empty index: it takes the rows as they are
            self._ids = list(item_ids)
            self._row = dict(zip(self._ids, range(len(self._ids)), strict=True))
            self._matrix, self._scenario = rows, scenario
            return
        at = self._rows_of(item_ids)
        self._matrix[at] = rows
        self._scenario[at] = scenario

    def _rows_of(self, item_ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """Rows of distinct ids, new ones appended at the end (grown to fit)."""
        new = [i for i in item_ids if i not in self._row]
        start = len(self._ids)
        self._grow(start + len(new))
        self._row.update(zip(new, range(start, start + len(new)), strict=True))
        self._ids.extend(new)
        row = self._row
        return np.fromiter((row[i] for i in item_ids), np.intp, len(item_ids))

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove items (absent ids are ignored): the last row moves into each freed one."""
        for item_id in dict.fromkeys(item_ids):
            row = self._row.pop(item_id, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            moved = self._ids.pop()
            if row != last:
                self._ids[row] = moved
                self._row[moved] = row
                self._matrix[row] = self._matrix[last]
                self._scenario[row] = self._scenario[last]
            self._matrix[last] = 0.0

    def _grow(self, size: int) -> None:
        capacity = len(self._matrix)
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        matrix[: len(self._ids)] = self._matrix[: len(self._ids)]
        scenario = np.zeros(capacity, dtype=np.int32)
        scenario[: len(self._ids)] = self._scenario[: len(self._ids)]
        self._matrix, self._scenario = matrix, scenario

    def vectors(self, item_ids: Sequence[str], using: str = "rec") -> VectorMap:
        """{item_id: normalised vector (a copy)} of the ids present."""
        check_using(using)
        if using != "rec":
            raise ValueError("a serving index holds only the 'rec' vectors")
        present = list(dict.fromkeys(i for i in item_ids if i in self._row))
        return VectorMap(present, self._matrix[[self._row[i] for i in present]])

    def search(self, requests: Sequence[SearchRequest]) -> HitLists:
        """Exact top-k by cosine of each request, scenario-filtered, excluded ids
        never returned; best first. A chunk of queries is scored, masked and ranked as
        one matrix (a few numpy calls per chunk, not per query: per query they cost
        more than the scoring itself at catalog sizes like ML-100K's)."""
        for request in requests:
            check_k(request.k)
            if request.using != "rec":
                raise ValueError("a serving index searches only the 'rec' vectors")
            if isinstance(request.exclude, str):
                raise ValueError("exclude must be a sequence of item ids, not a single string")
        counts = [0] * len(requests)
        ids: list[str] = []
        scores: list[npt.NDArray[np.float32]] = [NO_SCORES]
        live = [n for n, r in enumerate(requests) if r.k > 0]
        rank_rows = max(1, RANK_SCORES // max(1, len(self._ids)))
        for start in range(0, len(live), QUERY_CHUNK):
            chunk = live[start : start + QUERY_CHUNK]
            asked = [requests[n] for n in chunk]
            queries = checked_unit_rows(
                np.stack([np.asarray(r.vector, dtype=np.float32) for r in asked]),
                self.dim,
                "search vector",
            )
            scored = queries @ self._matrix[: len(self._ids)].T
            self._mask(scored, asked)
            for low in range(0, len(chunk), rank_rows):
                rows = slice(low, low + rank_rows)
                hit_ids, hit_scores, hit_counts = self._tops(
                    scored[rows], [r.k for r in asked[rows]]
                )
                ids += hit_ids
                scores.append(hit_scores)
                for n, count in zip(chunk[rows], hit_counts, strict=True):
                    counts[n] = count
        return HitLists(ids, np.concatenate(scores).astype(np.float64), counts)

    def _mask(self, scores: npt.NDArray[np.float32], requests: Sequence[SearchRequest]) -> None:
        """-inf, in place, where row n's request may not hit: items of another scenario
        than it asks for (all of them for a scenario the index has none of) and the ids
        it excludes (a user's whole history, on every event)."""
        rows_of: dict[str, list[int]] = {}
        for row, request in enumerate(requests):
            if request.scenario is not None:
                rows_of.setdefault(request.scenario, []).append(row)
        for scenario, rows in rows_of.items():
            code = self._scenario_code.get(scenario)
            other = (
                np.ones(scores.shape[1], dtype=bool)
                if code is None
                else self._scenario[: scores.shape[1]] != code
            )
            if not other.any():  # a catalog of one scenario: nothing to mask
                continue
            if len(rows) == len(requests):
                scores[:, other] = -np.inf
            else:
                some = scores[rows]
                some[:, other] = -np.inf
                scores[rows] = some
        # The excluded ids' rows (-1: not in the index), looked up without a Python loop.
        excluded = list(chain.from_iterable(r.exclude for r in requests))
        if excluded:
            cols = np.fromiter(map(self._row.get, excluded, repeat(-1)), np.int64, len(excluded))
            at = np.repeat(np.arange(len(requests)), [len(r.exclude) for r in requests])
            known = cols >= 0
            scores[at[known], cols[known]] = -np.inf

    def _tops(
        self, scores: npt.NDArray[np.float32], ks: Sequence[int]
    ) -> tuple[list[str], npt.NDArray[np.float32], list[int]]:
        """Each row's top ``ks[row]`` hits, best first, masked (-inf) ones dropped: their
        ids and scores, joined row after row, and how many each row has."""
        items = scores.shape[1]
        width = min(max(ks), items)
        if width == 0:
            return [], NO_SCORES, [0] * len(ks)
        negated = np.negative(scores, out=scores)  # ascending order is best first
        if width < items:
            top = np.argpartition(negated, width - 1, axis=1)[:, :width]
        else:
            top = np.broadcast_to(np.arange(items), (len(ks), items))
        order = np.argsort(np.take_along_axis(negated, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        best = -np.take_along_axis(negated, top, axis=1)
        wanted = np.arange(width) < np.minimum(np.asarray(ks), width)[:, None]
        kept = wanted & np.isfinite(best)
        return (
            list(map(self._ids.__getitem__, top[kept].tolist())),
            best[kept],
            kept.sum(axis=1).tolist(),
        )

    def close(self) -> None:
        self._matrix = np.zeros((1, self.dim), dtype=np.float32)
        self._scenario = np.zeros(1, dtype=np.int32)
        self._ids, self._row = [], {}
