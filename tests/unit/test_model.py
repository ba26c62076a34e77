"""The serving model's arithmetic: one interface for the frozen model and adapters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from workers.adapters import AdapterConfig, RecAdapter
from workers.adapters.io import adapter_files
from workers.model import (
    SCAN_CHUNK,
    AdapterModel,
    FrozenModel,
    fold_sequences,
    is_usable,
    model_of,
    prefix_states,
    unit,
    usable_rows,
)
from workers.model import decayed_sum as fold
from workers.recommend_io import UserState

normalized = unit


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_fold_from_empty_state_is_weighted_unit_item() -> None:
    out = fold(None, vec(3.0, 4.0), weights=2.0, recency=0.5)
    np.testing.assert_allclose(out, [1.2, 1.6], rtol=1e-6)
    assert out.dtype == np.float32


def test_fold_decays_previous_vector_exactly() -> None:
    v = vec(1.0, 2.0, -1.0)
    x = vec(0.0, 0.0, 5.0)
    out = fold(v, x, weights=0.5, recency=0.9)
    np.testing.assert_allclose(out, 0.9 * v + 0.5 * vec(0.0, 0.0, 1.0), rtol=1e-6)
    assert out.dtype == np.float32


def test_fold_item_scale_does_not_matter() -> None:
    v = vec(0.3, -0.2)
    np.testing.assert_allclose(fold(v, vec(1.0, 1.0), 1.0, 0.8), fold(v, vec(50.0, 50.0), 1.0, 0.8))


def test_fold_sequence_weights_recent_items_more() -> None:
    a, b = vec(1.0, 0.0), vec(0.0, 1.0)
    v = fold(fold(None, a, 1.0, 0.5), b, 1.0, 0.5)
    np.testing.assert_allclose(v, [0.5, 1.0])
    assert v[1] > v[0]


def test_fold_and_normalized_never_mutate_inputs() -> None:
    v, x = vec(1.0, 2.0), vec(3.0, 4.0)
    v_before, x_before = v.copy(), x.copy()
    out = fold(v, x, 1.0, 0.5)
    unit = normalized(x)
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_array_equal(x, x_before)
    assert out is not v
    assert unit is not x
    zero = vec(0.0, 0.0)
    assert normalized(zero) is not zero


def test_fold_of_zero_item_only_decays() -> None:
    v = vec(2.0, 2.0)
    np.testing.assert_allclose(fold(v, vec(0.0, 0.0), 1.0, 0.5), [1.0, 1.0])


def test_normalized_gives_unit_length() -> None:
    out = normalized(vec(3.0, 4.0))
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-6)
    assert out.dtype == np.float32


def test_normalized_of_zero_vector_stays_zero() -> None:
    out = normalized(vec(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    ("vector", "usable"),
    [
        (None, False),
        (vec(0.0, 0.0), False),
        (vec(np.nan, 1.0), False),
        (vec(np.inf, 1.0), False),
        (vec(1e-3, 0.0), True),
        (vec(-1.0, 0.0), True),
    ],
)
def test_is_usable(vector: np.ndarray | None, usable: bool) -> None:
    assert is_usable(vector) is usable


@given(
    st.lists(
        st.lists(
            st.sampled_from([0.0, -0.0, 1e-30, 1e-3, -2.5, 3e38, np.nan, np.inf, -np.inf]),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_usable_rows_is_is_usable_of_each_row(rows: list[list[float]]) -> None:
    matrix = np.array(rows, dtype=np.float32)
    with np.errstate(over="ignore"):  # 3e38 squared: both overflow to inf, and agree
        assert usable_rows(matrix).tolist() == [is_usable(row) for row in matrix]


def test_usable_rows_needs_a_matrix() -> None:
    with pytest.raises(ValueError, match="matrix"):
        usable_rows(np.ones(3, dtype=np.float32))


def remembered(history: list[str], item_id: str, size: int) -> list[str]:
    state = UserState(history=list(history), weights=[1.0] * len(history))
    state.remember(item_id, 1.0, size)
    return state.history


def test_remember_appends() -> None:
    assert remembered(["a", "b"], "c", 10) == ["a", "b", "c"]


def test_remember_moves_repeat_to_end_without_duplicates() -> None:
    assert remembered(["a", "b", "c"], "a", 10) == ["b", "c", "a"]


def test_remember_keeps_last_n() -> None:
    assert remembered(["a", "b", "c"], "d", 2) == ["c", "d"]
    assert remembered([], "x", 1) == ["x"]


def test_remember_keeps_each_item_s_weight() -> None:
    state = UserState(history=["a", "b"], weights=[2.0, 0.5])
    state.remember("a", 3.0, 10)
    state.remember("c", 0.25, 3)
    assert (state.history, state.weights) == (["b", "a", "c"], [0.5, 3.0, 0.25])
    with pytest.raises(ValueError, match="weights"):
        UserState(history=["a"], weights=[])


def remembered_reference(
    history: list[str], weights: list[float], item_id: str, weight: float, size: int
) -> tuple[list[str], list[float]]:
    """What `UserState.remember` means, one pair at a time."""
    kept = [(i, w) for i, w in zip(history, weights, strict=True) if i != item_id]
    kept = [*kept, (item_id, weight)][-size:]
    return [i for i, _ in kept], [w for _, w in kept]


@given(
    history=st.lists(st.sampled_from("abcdefgh"), max_size=12, unique=True),
    item_id=st.sampled_from("abcdefghij"),
    size=st.integers(min_value=1, max_value=14),
)
def test_remember_is_the_reference_and_leaves_the_old_lists_alone(
    history: list[str], item_id: str, size: int
) -> None:
    weights = [float(k) for k in range(len(history))]
    state = UserState(history=list(history), weights=list(weights))
    before, before_weights = state.history, state.weights  # as a sample may hold them
    state.remember(item_id, 99.0, size)
    assert (state.history, state.weights) == remembered_reference(
        history, weights, item_id, 99.0, size
    )
    assert (before, before_weights) == (history, weights)


def test_frozen_model_is_identity_projection_and_decayed_sum() -> None:
    model = FrozenModel(dim=2, recency=0.5)
    assert model.version == 0
    np.testing.assert_allclose(
        model.item_vectors(["a", "b"], np.array([[3.0, 4.0], [0.0, 2.0]]), [None, None]),
        [[0.6, 0.8], [0.0, 1.0]],
        rtol=1e-6,
    )
    state = model.step(model.initial_state(), vec(3.0, 4.0), 2.0)
    np.testing.assert_allclose(state, [1.2, 1.6], rtol=1e-6)
    state = model.step(state, vec(0.0, 1.0), 1.0)
    np.testing.assert_allclose(state, [0.6, 1.8], rtol=1e-6)
    np.testing.assert_allclose(model.readout(state), unit(vec(0.6, 1.8)), rtol=1e-6)
    assert not is_usable(model.readout(model.initial_state()))


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_the_event_weight_counts_at_every_version(kind: str, tmp_path: Path) -> None:
    """A heavier event pulls the user further towards its item, for the frozen model
    (version 0) and for an adapter of every aggregator kind (version >= 1)."""
    torch.manual_seed(0)
    adapter = RecAdapter(AdapterConfig(dim=4, n_experts=2, aggregator=kind, dropout=0.0))
    files = adapter_files(adapter, 1)
    a, b = unit(vec(1.0, 0.0, 0.0, 0.0)), unit(vec(0.0, 1.0, 0.0, 0.0))
    for model in (
        model_of(0, None, dim=4, recency=0.9),
        model_of(1, files, dim=4, recency=0.9),
    ):
        rec = model.item_vectors(["a", "b"], np.stack([a, b]), [None, None])

        def pull(weight: float, model: object = model, rec: np.ndarray = rec) -> float:
            state = model.step(model.initial_state(), rec[0], 1.0)  # type: ignore[attr-defined]
            state = model.step(state, rec[1], weight)  # type: ignore[attr-defined]
            return float(model.readout(state) @ rec[1])  # type: ignore[attr-defined]

        assert pull(3.0) > pull(1.0) + 1e-3 > pull(0.3) + 2e-3, (model.version, kind)
        same = model.step(model.initial_state(), rec[0], 1.0)
        assert np.allclose(same, model.step(model.initial_state(), rec[0], 1.0))
    assert isinstance(model_of(1, files, dim=4, recency=0.9), AdapterModel)


def _model_of_kind(kind: str) -> Any:
    """The frozen model, or a version-1 adapter with the ``kind`` aggregator (8-d)."""
    if kind == "frozen":
        return FrozenModel(8, 0.9)
    adapter = RecAdapter(AdapterConfig(dim=8, n_experts=2, aggregator=kind, dropout=0.0))
    return model_of(1, adapter_files(adapter, 1), dim=8, recency=0.9)


def _sequences(
    rng: np.random.Generator, lengths: Sequence[int]
) -> list[list[tuple[npt.NDArray[np.float32], float]]]:
    """A sequence of (unit item, weight in [0.2, 3)) of each length."""
    return [
        [
            (unit(rng.standard_normal(8).astype(np.float32)), float(w))
            for w in rng.uniform(0.2, 3, n)
        ]
        for n in lengths
    ]


@pytest.mark.parametrize("kind", ["frozen", "mean", "attention", "gru"])
def test_folding_many_users_at_once_equals_folding_each_item_by_item(kind: str) -> None:
    """The recompute path (`fold_sequences`, one closed-form `fold` per user) gives every
    user the state that stepping through their history one item at a time gives."""
    torch.manual_seed(1)
    model = _model_of_kind(kind)
    sequences = _sequences(np.random.default_rng(1), (5, 0, 1, 12, 3))
    folded = fold_sequences(model, sequences)
    for sequence, got in zip(sequences, folded, strict=True):
        if not sequence:
            assert got is None
            continue
        want = model.initial_state()
        for item, weight in sequence:
            want = model.step(want, item, weight)
        assert got is not None
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("kind", ["frozen", "mean", "attention", "gru"])
def test_the_states_after_each_item_are_those_of_stepping_item_by_item(kind: str) -> None:
    """A micro-batch's path (`prefix_states`: users of one length scanned together,
    `SCAN_CHUNK` positions a call, from given states) gives after every item the state
    that `step` gives; weights of 0 and far beyond the cap included."""
    torch.manual_seed(2)
    model = _model_of_kind(kind)
    sequences = _sequences(np.random.default_rng(2), (3, 0, 1, 3, SCAN_CHUNK + 9, 2))
    sequences[3][1] = (sequences[3][1][0], 0.0)
    sequences[5][0] = (sequences[5][0][0], 1e30)
    empty = model.initial_state()
    given = model.step(empty, sequences[0][0][0], 2.0)
    starts = [given, None, given, None, given, None]
    scanned = prefix_states(model, sequences, starts)
    for sequence, start, got in zip(sequences, starts, scanned, strict=True):
        if not sequence:
            assert got is None
            continue
        assert got is not None and got.shape == (len(sequence), len(empty))
        want = empty if start is None else start
        for t, (item, weight) in enumerate(sequence):
            want = model.step(want, item, weight)
            np.testing.assert_allclose(got[t], want, rtol=1e-4, atol=1e-5)


def test_a_decayed_sum_of_many_items_equals_adding_them_one_at_a_time() -> None:
    """The trend's update per wave (several items at once) is the fold item by item."""
    rng = np.random.default_rng(5)
    items = rng.standard_normal((6, 8)).astype(np.float32)
    weights = rng.uniform(0.0, 3.0, 6)
    start = rng.standard_normal(8).astype(np.float32)
    for first in (None, start):
        want = first
        for item, weight in zip(items, weights, strict=True):
            want = fold(want, item, float(weight), 0.9)
        got = fold(first, items, weights, 0.9)
        assert want is not None
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
