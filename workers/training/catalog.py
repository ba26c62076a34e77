"""The trainer's cache of frozen base vectors: item id -> (row of a growing matrix, scenario)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


class BaseVectors:
    """Append-only (re-adding an id replaces its vector) float32 matrix keyed by item id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.rows: dict[str, int] = {}
        self.ids: list[str] = []
        self.scenarios: list[str | None] = []
        self._data: Matrix = np.zeros((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    @property
    def matrix(self) -> Matrix:
        """(n, dim) view of the cached vectors, row i = ``ids[i]``."""
        return self._data[: len(self.ids)]

    def add(self, vectors: Mapping[str, npt.ArrayLike], scenarios: Mapping[str, str]) -> None:
        """Cache (or replace) vectors; an id without a scenario uses the shared part. New
        ids get rows in id order, whatever order ``vectors`` comes in (callers build it
        from sets, whose order changes with Python's hash seed): negatives are drawn by
        row, so a seeded run stays deterministic."""
        for item_id in sorted(vectors):
            vector = vectors[item_id]
            row = np.asarray(vector, dtype=np.float32).reshape(-1)
            if row.shape != (self.dim,) or not np.isfinite(row).all():
                raise ValueError(f"item {item_id!r}: need a finite ({self.dim},) vector")
            index = self.rows.get(item_id)
            if index is None:
                index = len(self.ids)
                self._grow(index + 1)
                self.rows[item_id] = index
                self.ids.append(item_id)
                self.scenarios.append(scenarios.get(item_id))
            elif item_id in scenarios:
                self.scenarios[index] = scenarios[item_id]
            self._data[index] = row

    def _grow(self, size: int) -> None:
        if size <= self._data.shape[0]:
            return
        bigger = np.zeros((max(size, 2 * self._data.shape[0], 64), self.dim), dtype=np.float32)
        bigger[: self._data.shape[0]] = self._data
        self._data = bigger
