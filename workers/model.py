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
    scan_many(states, rec_items, weights)     -> (b, L, ...) the states after each of L
                                                 items per user, from given states
    fold(rec_items (n, d), weights (n,))     -> one history folded from the empty state,
                                                in one pass (closed form where there is one)
    readout(state)                            -> the unit query (zero when nothing is known)
    readout_many(states)                      -> the same for b users at once

`fold_sequences` folds many users' histories from the empty state (the recompute after a
version change) with one `fold` per user, whatever the history's length.
`prefix_states` gives the state after each item of many users' sequences from given
states (a micro-batch's events): users of one length scanned together, `SCAN_CHUNK`
positions a call.

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


# Finite in, finite out. An event's weight is clipped to MAX_WEIGHT when folded (the
# contract admits at most STREAMREC_LIMITS__WEIGHT_MAX, 1000 by default); a frozen-model
# state longer than STATE_NORM_CAP is scaled down to it (its readout, the direction, is
# unchanged); a stored state that is not finite (written before these bounds) starts
# over from the empty state.
MAX_WEIGHT = 1e6
STATE_NORM_CAP = 1e12
# `unit_rows` divides by the plain norm when every row's lies in this range (no square
# overflowed or underflowed); otherwise it scales each row by its largest entry first.
NORM_FAST_MIN, NORM_FAST_MAX = 1e-15, 1e15
# Positions one `scan_many` call covers: its cost grows with their square (an L x L
# matrix of factors per user), so a long run is scanned in chunks, carrying the state.
SCAN_CHUNK = 32


def unit_rows(matrix: Vector) -> Vector:
    """(n, d) -> (n, d) float32 with unit rows; zero rows (and rows that are not finite)
    give zero rows. Any finite input works: rows are scaled by their largest entry
    first, so no square overflows. Never modifies its input; one (n, d) copy, worked on
    in place (the whole catalog goes through here)."""
    x = np.array(matrix, dtype=np.float32, copy=True)
    if x.size == 0:
        return x
    # Fast path, one pass: every row's norm well inside float32 (what the catalog holds).
    norms = np.sqrt(np.einsum("...d,...d->...", x, x))[..., None]
    if np.all((norms > NORM_FAST_MIN) & (norms < NORM_FAST_MAX)):
        x /= norms
        return x
    peak = np.maximum(x.max(axis=-1, keepdims=True), -x.min(axis=-1, keepdims=True))
    ok = np.isfinite(peak) & (peak > 0)
    x /= np.where(ok, peak, np.float32(1.0))
    x[~ok[..., 0]] = 0.0
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    x /= np.where(norms > 0, norms, np.float32(1.0))
    return x


def unit(vector: Vector) -> Vector:
    """Unit-length copy (a zero vector stays zero; see `unit_rows`)."""
    one: Vector = unit_rows(np.asarray(vector, dtype=np.float32)[None, :])[0]
    return one


def clip_weights(weights: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Event weights as folded: within [0, MAX_WEIGHT] (NaN counts as 0)."""
    w = np.asarray(weights, dtype=np.float64)
    return np.clip(np.nan_to_num(w, nan=0.0, posinf=MAX_WEIGHT, neginf=0.0), 0.0, MAX_WEIGHT)


def finite_rows(states: Vector, empty: Vector) -> Vector:
    """(b, s) states with every row that is not finite replaced by ``empty`` (a copy)."""
    x = np.asarray(states, dtype=np.float32)
    bad = ~np.all(np.isfinite(x), axis=-1, keepdims=True)
    return np.where(bad, empty, x).astype(np.float32)


def capped_rows(states: npt.NDArray[np.float64]) -> Vector:
    """float64 (b, d) -> float32 rows no longer than STATE_NORM_CAP (scaled down)."""
    norms = np.linalg.norm(states, axis=-1, keepdims=True)
    scale = np.where(norms > STATE_NORM_CAP, STATE_NORM_CAP / np.maximum(norms, 1.0), 1.0)
    return (states * scale).astype(np.float32)


def is_usable(vector: Vector | None) -> bool:
    """A vector that can serve as a query (present, finite, non-zero)."""
    return vector is not None and bool(usable_rows(np.reshape(vector, (1, -1)))[0])


def usable_rows(matrix: Vector) -> npt.NDArray[np.bool_]:
    """`is_usable` of each row of a (n, d) matrix, in one pass over it."""
    rows = np.asarray(matrix)
    if rows.ndim != 2:
        raise ValueError(f"usable_rows needs a (n, d) matrix, got shape {rows.shape}")
    usable: npt.NDArray[np.bool_] = np.isfinite(rows).all(axis=1) & (
        np.linalg.norm(rows, axis=1) > 0.0
    )
    return usable


def decayed_sum(
    vector: Vector | None, items: Vector, weights: npt.ArrayLike, recency: float
) -> Vector:
    """``recency * vector + weight * unit(item)`` for each item (a (d,) vector or (n, d)
    rows, oldest first, with a weight each) in one pass; ``None`` (or a vector that is
    not finite) is the empty sum. Finite, at most STATE_NORM_CAP long."""
    rows = np.asarray(items, dtype=np.float32).reshape(-1, np.shape(items)[-1])
    w = clip_weights(weights).reshape(-1) * np.power(float(recency), np.arange(len(rows))[::-1])
    added = w @ unit_rows(rows).astype(np.float64)
    if vector is not None and np.all(np.isfinite(vector)):
        added = recency ** len(rows) * np.asarray(vector, dtype=np.float64) + added
    out: Vector = capped_rows(added[None, :])[0]
    return out


class ServingModel(Protocol):
    """What a server needs of a model version (see the module docstring)."""

    @property
    def version(self) -> int: ...

    def item_vectors(
        self, item_ids: Sequence[str], base: Vector, scenarios: Sequence[str | None]
    ) -> Vector: ...

    def initial_state(self) -> Vector: ...

    def step(self, state: Vector, rec_item: Vector, weight: float) -> Vector: ...

    def step_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector: ...

    def scan_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector: ...

    def fold(self, rec_items: Vector, weights: npt.ArrayLike) -> Vector: ...

    def readout(self, state: Vector) -> Vector: ...

    def readout_many(self, states: Vector) -> Vector: ...


def fold_sequences(
    model: ServingModel, sequences: Sequence[Sequence[tuple[Vector, float]]]
) -> list[Vector | None]:
    """Each sequence of (rec item, weight), oldest first, folded from the empty state:
    one closed-form `fold` per user (a user's history is small; a padded block of every
    user's is not, and costs more to build than to fold); None for an empty one."""
    return [
        model.fold(np.stack([item for item, _ in s]), np.array([w for _, w in s])) if s else None
        for s in sequences
    ]


def prefix_states(
    model: ServingModel,
    sequences: Sequence[Sequence[tuple[Vector, float]]],
    starts: Sequence[Vector | None],
) -> list[Vector | None]:
    """Each sequence of (rec item, weight), oldest first, folded into its start state
    (None: the empty state) -> the (len, state_size) states after each of its items, as
    `step` item by item gives them (up to float rounding); None for an empty sequence.
    Users whose sequences have one length are scanned together (`scan_many`),
    `SCAN_CHUNK` positions a call."""
    out: list[Vector | None] = [None] * len(sequences)
    by_length: dict[int, list[int]] = {}
    for k, sequence in enumerate(sequences):
        if sequence:
            by_length.setdefault(len(sequence), []).append(k)
    empty = model.initial_state()
    for length, rows in by_length.items():
        given = [starts[k] for k in rows]
        state = np.stack([empty if s is None else s for s in given]).astype(np.float32)
        items = np.array([[item for item, _ in sequences[k]] for k in rows], dtype=np.float32)
        weights = np.array([[w for _, w in sequences[k]] for k in rows], dtype=np.float64)
        parts = []
        for at in range(0, length, SCAN_CHUNK):
            part = model.scan_many(
                state, items[:, at : at + SCAN_CHUNK], weights[:, at : at + SCAN_CHUNK]
            )
            parts.append(part)
            state = part[:, -1]
        states = np.concatenate(parts, axis=1)
        for row, k in enumerate(rows):
            out[k] = states[row]
    return out


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
        one = np.array([weight], dtype=np.float64)
        new: Vector = self.step_many(state[None, :], rec_item[None, :], one)[0]
        return new

    def step_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        start = finite_rows(states, self.initial_state()).astype(np.float64)
        added = clip_weights(weights).reshape(-1, 1) * unit_rows(rec_items)
        return capped_rows(self.recency * start + added)

    def scan_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        """After L items: ``recency**(j+1) * start + sum_i<=j recency**(j-i) * w_i *
        unit(x_i)``, as one (L, L) product per call; capped once per state (equal to
        stepping while no partial sum exceeds STATE_NORM_CAP)."""
        start = finite_rows(states, self.initial_state()).astype(np.float64)
        added = clip_weights(weights)[..., None] * unit_rows(rec_items)  # (b, L, d)
        positions = np.arange(added.shape[1])
        age = positions[:, None] - positions[None, :]
        factors = np.where(age >= 0, float(self.recency) ** np.maximum(age, 0), 0.0)
        carried = (float(self.recency) ** (positions + 1))[None, :, None] * start[:, None, :]
        return capped_rows(factors @ added + carried)

    def fold(self, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        """Closed form of stepping from zero: ``sum_t recency**age_t * w_t * unit(x_t)``
        (age: items after t), capped once at the end. Equals stepping while no partial
        sum exceeds STATE_NORM_CAP: for any history shorter than STATE_NORM_CAP /
        MAX_WEIGHT items."""
        return decayed_sum(None, rec_items, weights, self.recency)

    def readout_many(self, states: Vector) -> Vector:
        return unit_rows(states)

    def readout(self, state: Vector) -> Vector:
        return unit(state)


class AdapterModel:
    """Version v >= 1: a published `RecAdapter` (whitened MoE + sequence aggregator)."""

    def __init__(self, adapter: RecAdapter) -> None:
        self.adapter = adapter.eval()
        self.out_dim = adapter.config.out_features
        self.empty: Vector = adapter.initial_state(1)[0].numpy().astype(np.float32)
        self.serving_step = adapter.aggregator.serving_step()  # None: torch steps (gru)

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
        return self.empty.copy()

    def step(self, state: Vector, rec_item: Vector, weight: float) -> Vector:
        one = np.array([weight], dtype=np.float64)
        new: Vector = self.step_many(state[None, :], rec_item[None, :], one)[0]
        return new

    def step_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        # Rec vectors are unit already (`item_vectors`); normalising again bounds what
        # any caller folds. A row the aggregator still makes non-finite keeps its state.
        start = finite_rows(states, self.empty)
        items, w = unit_rows(rec_items), clip_weights(weights).astype(np.float32)
        if self.serving_step is not None:
            new = self.serving_step(start, items, w)
        else:
            new = self.adapter.step_items(
                torch.from_numpy(np.ascontiguousarray(start)),
                torch.from_numpy(items),
                torch.from_numpy(w),
            ).numpy()
        good = np.all(np.isfinite(new), axis=-1, keepdims=True)
        return np.where(good, new, start).astype(np.float32)

    def scan_many(self, states: Vector, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        """The aggregator's scan (`ServingStep.scan`) when it has one and every state it
        gives is finite; else `step_many` position by position (gru, or a row the
        aggregator makes non-finite, which keeps its state as `step_many` does)."""
        start = finite_rows(states, self.empty)
        items, w = unit_rows(rec_items), clip_weights(weights).astype(np.float32)
        if self.serving_step is not None:
            scanned = self.serving_step.scan(start, items, w)
            if np.all(np.isfinite(scanned)):
                return scanned
        out = np.empty((*items.shape[:2], start.shape[-1]), dtype=np.float32)
        state = start
        for t in range(items.shape[1]):
            state = self.step_many(state, items[:, t], w[:, t])
            out[:, t] = state
        return out

    def fold(self, rec_items: Vector, weights: npt.ArrayLike) -> Vector:
        """A history folded from the empty state in one pass (the adapter's closed form,
        `RecAdapter.fold_items`); if that is not finite, item by item instead (as
        `step_many` keeps the last finite state)."""
        units = unit_rows(rec_items)
        w = clip_weights(weights).astype(np.float32)
        folded = self.adapter.fold_items(
            torch.from_numpy(units[None]),
            torch.from_numpy(w[None]),
            torch.ones(1, len(w), dtype=torch.bool),
        )[0].numpy()
        if np.all(np.isfinite(folded)):
            return folded.astype(np.float32)
        state = self.initial_state()
        for item, weight in zip(units, w, strict=True):
            state = self.step(state, item, float(weight))
        return state

    def readout(self, state: Vector) -> Vector:
        one: Vector = self.readout_many(state[None, :])[0]
        return one

    def readout_many(self, states: Vector) -> Vector:
        # Every aggregator reads a user out as the unit direction of the state's first
        # out_dim floats (`SequenceAggregator.readout`); `unit_rows` also makes rows
        # shorter than torch's eps (1e-12) unit.
        return unit_rows(np.asarray(states, dtype=np.float32)[:, : self.out_dim])


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
