"""The model a server reads items and users through: one interface for every version.

Version 0 is the frozen language model (`FrozenModel`): an item's rec vector is its unit
base vector (identity projection) and a user is the decayed sum ``v <- r * v + w * unit(x)``.
Version v >= 1 is an adapter the trainer published (`AdapterModel`). Both answer the
same calls, so the serving code has one path and the event's weight counts at every
version::

    item_vectors(ids, base (n, d), scenarios) -> (n, d) unit rec vectors
    initial_state()                           -> the empty user state
    step(state, rec_item, weight)             -> the state with one more item, O(d)
    step_many(states, rec_items, weights)     -> the same for b users at once (b, ...)
    readout(state)                            -> the unit query (zero when nothing is known)
    readout_many(states)                      -> the same for b users at once

`fold_sequences` folds many users' histories with one `step_many` per position (the
recompute after a version change), not one `step` per item.

Pure numpy/torch; `model_of` builds a version from its files (`workers.adapters.io`),
which reach every node through the catalog actor, never a shared directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch

from workers.adapters import RecAdapter
from workers.adapters.io import AdapterFiles, adapter_from_files

Vector = npt.NDArray[np.float32]


def unit(vector: Vector) -> Vector:
    """Unit-length copy (a zero vector stays zero); never modifies its input."""
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return vector.astype(np.float32, copy=True)
    return (vector / norm).astype(np.float32)


def unit_rows(matrix: Vector) -> Vector:
    """(n, d) -> (n, d) with unit rows (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def is_usable(vector: Vector | None) -> bool:
    """A vector that can serve as a query (present, finite, non-zero)."""
    return (
        vector is not None
        and bool(np.all(np.isfinite(vector)))
        and float(np.linalg.norm(vector)) > 0.0
    )


def decayed_sum(vector: Vector | None, item: Vector, weight: float, recency: float) -> Vector:
    """``recency * vector + weight * unit(item)``; ``None`` is the empty sum."""
    added = weight * unit(item)
    if vector is None:
        return added.astype(np.float32)
    return (recency * vector + added).astype(np.float32)


class ServingModel(Protocol):
    """What a server needs of a model version (see the module docstring)."""

    @property
    def version(self) -> int: ...

    def item_vectors(
        self, item_ids: Sequence[str], base: Vector, scenarios: Sequence[str | None]
    ) -> Vector: ...

    def initial_state(self) -> Vector: ...

    def step(self, state: Vector, rec_item: Vector, weight: float) -> Vector: ...

    def step_many(self, states: Vector, rec_items: Vector, weights: Vector) -> Vector: ...

    def readout(self, state: Vector) -> Vector: ...

    def readout_many(self, states: Vector) -> Vector: ...


def fold_sequences(
    model: ServingModel,
    sequences: Sequence[Sequence[tuple[Vector, float]]],
    starts: Sequence[Vector | None] | None = None,
) -> list[Vector | None]:
    """Each sequence of (rec item, weight), oldest first, folded into its start state
    (None or no ``starts``: the empty state): as ``step`` item by item, with one
    ``step_many`` per position over the users whose sequence reaches it. A user with an
    empty sequence keeps their start."""
    if not sequences:
        return []
    given = list(starts) if starts is not None else [None] * len(sequences)
    empty = model.initial_state()
    states = np.stack([empty if s is None else s for s in given]).astype(np.float32)
    for t in range(max(len(s) for s in sequences)):
        rows = [k for k, s in enumerate(sequences) if len(s) > t]
        items = np.stack([sequences[k][t][0] for k in rows]).astype(np.float32)
        weights = np.array([sequences[k][t][1] for k in rows], dtype=np.float32)
        states[rows] = model.step_many(states[rows], items, weights)
    return [states[k].copy() if s else given[k] for k, s in enumerate(sequences)]


class FrozenModel:
    """Version 0: identity projection, decayed-sum aggregator with per-event ``recency``."""

    version = 0

    def __init__(self, dim: int, recency: float) -> None:
        self.dim = dim
        self.recency = recency

    def item_vectors(
        self, item_ids: Sequence[str], base: Vector, scenarios: Sequence[str | None]
    ) -> Vector:
        return unit_rows(np.asarray(base, dtype=np.float32).reshape(len(item_ids), -1))

    def initial_state(self) -> Vector:
        return np.zeros(self.dim, dtype=np.float32)

    def step(self, state: Vector, rec_item: Vector, weight: float) -> Vector:
        return decayed_sum(state, rec_item, weight, self.recency)

    def step_many(self, states: Vector, rec_items: Vector, weights: Vector) -> Vector:
        added = weights.reshape(-1, 1) * unit_rows(rec_items)
        return (self.recency * states + added).astype(np.float32)

    def readout_many(self, states: Vector) -> Vector:
        return unit_rows(states)

    def readout(self, state: Vector) -> Vector:
        return unit(state)


class AdapterModel:
    """Version v >= 1: a published `RecAdapter` (whitened MoE + sequence aggregator)."""

    def __init__(self, adapter: RecAdapter) -> None:
        self.adapter = adapter.eval()

    @property
    def version(self) -> int:
        return self.adapter.version

    def item_vectors(
        self, item_ids: Sequence[str], base: Vector, scenarios: Sequence[str | None]
    ) -> Vector:
        matrix = np.asarray(base, dtype=np.float32).reshape(len(item_ids), -1)
        out = self.adapter.item_vectors(item_ids, torch.from_numpy(matrix), scenarios)
        return out.numpy().astype(np.float32)

    def initial_state(self) -> Vector:
        return self.adapter.initial_state(1)[0].numpy().astype(np.float32)

    def step(self, state: Vector, rec_item: Vector, weight: float) -> Vector:
        one = np.array([weight], dtype=np.float32)
        new: Vector = self.step_many(state[None, :], rec_item[None, :], one)[0]
        return new

    def step_many(self, states: Vector, rec_items: Vector, weights: Vector) -> Vector:
        new = self.adapter.step_items(
            torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(rec_items, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)),
        )
        return new.numpy().astype(np.float32)

    def readout(self, state: Vector) -> Vector:
        one: Vector = self.readout_many(state[None, :])[0]
        return one

    def readout_many(self, states: Vector) -> Vector:
        with torch.no_grad():
            out = self.adapter.readout(torch.from_numpy(np.ascontiguousarray(states)))
        return out.numpy().astype(np.float32)


def model_of(version: int, files: AdapterFiles | None, *, dim: int, recency: float) -> ServingModel:
    """The model of ``version``: `FrozenModel` for 0, else the adapter in ``files``."""
    if version == 0:
        return FrozenModel(dim, recency)
    if files is None:
        raise ValueError(f"version {version} needs its adapter files")
    adapter = adapter_from_files(files)
    if adapter.version != version:
        raise ValueError(f"the files of version {version} hold version {adapter.version}")
    return AdapterModel(adapter)
