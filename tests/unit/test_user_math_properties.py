"""Properties of the user math (`workers.model`), for any finite input (hypothesis).

Finite in, finite out: whatever finite weights and item vectors arrive, in any order,
a user's state stays finite and its readout is a unit vector (or zero when nothing
usable was folded), at every model version (the frozen model, adapters of each
aggregator). A state made non-finite before these bounds existed starts over.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workers.adapters import AdapterConfig, RecAdapter
from workers.model import (
    MAX_WEIGHT,
    STATE_NORM_CAP,
    AdapterModel,
    FrozenModel,
    ServingModel,
    Vector,
    decayed_sum,
    fold_sequences,
    unit,
    unit_rows,
)

DIM = 4
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)  # up to 3.4e38
items = arrays(np.float32, DIM, elements=finite32)
weights = st.floats(min_value=0.0, max_value=1.7e308, allow_nan=False, allow_infinity=False)
recencies = st.floats(min_value=1e-3, max_value=1.0)
steps = st.lists(st.tuples(items, weights), min_size=1, max_size=30)


def adapter_model(aggregator: str) -> AdapterModel:
    torch.manual_seed(0)
    config = AdapterConfig(dim=DIM, n_experts=2, aggregator=aggregator, dropout=0.0)
    return AdapterModel(RecAdapter(config))


MODELS: dict[str, ServingModel] = {
    "frozen": FrozenModel(DIM, recency=0.95),
    "frozen-no-decay": FrozenModel(DIM, recency=1.0),
    **{kind: adapter_model(kind) for kind in ("mean", "attention", "gru")},
}


def assert_unit_or_zero(vector: Vector) -> None:
    assert np.all(np.isfinite(vector))
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    assert norm == 0.0 or abs(norm - 1.0) < 1e-3, norm


@given(items)
def test_unit_of_any_finite_vector_is_unit_or_zero(vector: Vector) -> None:
    before = vector.copy()
    out = unit(vector)
    assert_unit_or_zero(out)
    assert (float(np.abs(out).max()) == 0.0) == (float(np.abs(vector).max()) == 0.0)
    np.testing.assert_array_equal(vector, before)  # never modified


@given(arrays(np.float32, (3, DIM), elements=finite32))
def test_unit_rows_of_any_finite_matrix_are_unit_or_zero(matrix: Vector) -> None:
    for row in unit_rows(matrix):
        assert_unit_or_zero(row)


@given(st.one_of(st.none(), items), items, weights, recencies)
def test_a_decayed_sum_is_finite_and_bounded(
    vector: Vector | None, item: Vector, weight: float, recency: float
) -> None:
    out = decayed_sum(vector, item, weight, recency)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert float(np.linalg.norm(out.astype(np.float64))) <= STATE_NORM_CAP * 1.001


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=60, deadline=None)
@given(sequence=steps)
def test_any_sequence_keeps_the_state_finite_and_the_readout_unit(
    name: str, sequence: list[tuple[Vector, float]]
) -> None:
    model = MODELS[name]
    state = model.initial_state()
    for item, weight in sequence:
        state = model.step(state, item, weight)
        assert state.dtype == np.float32 and np.all(np.isfinite(state))
        assert_unit_or_zero(model.readout(state))


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=30, deadline=None)
@given(sequences=st.lists(steps, min_size=1, max_size=4))
def test_batched_folds_stay_finite(name: str, sequences: list[list[tuple[Vector, float]]]) -> None:
    model = MODELS[name]
    for state in fold_sequences(model, sequences):
        assert state is not None and np.all(np.isfinite(state))
        assert_unit_or_zero(model.readout(state))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_weight_of_1e39_does_not_make_the_state_infinite(name: str) -> None:
    model = MODELS[name]
    item = np.array([1.0, 2.0, 0.0, -1.0], dtype=np.float32)
    state = model.step(model.initial_state(), item, 1e39)
    assert np.all(np.isfinite(state))
    np.testing.assert_allclose(
        model.readout(state),
        model.readout(model.step(model.initial_state(), item, MAX_WEIGHT)),
        atol=1e-5,
    )


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("poison", [np.inf, -np.inf, np.nan])
def test_a_non_finite_stored_state_starts_over(name: str, poison: float) -> None:
    model = MODELS[name]
    item = np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32)
    bad = model.initial_state()
    bad[0] = poison
    state = model.step(bad, item, 1.0)
    np.testing.assert_allclose(state, model.step(model.initial_state(), item, 1.0), atol=1e-6)
