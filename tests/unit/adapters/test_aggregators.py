"""Sequence aggregators: batch path vs the O(d) incremental path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit.adapters.helpers import DIM, cfg, scramble, training_loss, unit, user_vectors
from workers.adapters import (
    RecAdapter,
    SequenceAggregator,
)
from workers.model import decayed_sum as fold


def fold_steps(agg: SequenceAggregator, items: torch.Tensor) -> torch.Tensor:
    """(b, L, d) -> (b, state_size), one `step` per event."""
    state = agg.initial_state(items.shape[0])
    for t in range(items.shape[1]):
        state = agg.step(state, items[:, t])
    return state


def left_padded(items: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the last lengths[i] items of row i at the right end; NaN in the padding."""
    b, length, _ = items.shape
    mask = (
        torch.arange(length).expand(b, length)
        >= torch.tensor([length - n for n in lengths])[:, None]
    )
    return torch.where(mask[..., None], items, torch.full_like(items, float("nan"))), mask


def test_mean_incremental_equals_masked_mean() -> None:
    agg = SequenceAggregator(DIM, "mean", max_history=50, recency=0.9)
    items = unit(torch.randn(3, 6, DIM))
    padded, mask = left_padded(items, [6, 2, 1])
    expected = torch.stack([items[0].mean(0), items[1, 4:].mean(0), items[2, 5]])
    torch.testing.assert_close(agg(padded, mask), unit(expected))
    for row, n in enumerate([6, 2, 1]):
        state = fold_steps(agg, items[row : row + 1, 6 - n :])
        torch.testing.assert_close(state[0, :DIM] / state[0, DIM], expected[row])
        torch.testing.assert_close(agg.readout(state)[0], unit(expected[row]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["attention", "gru"])
def test_incremental_equals_full_recompute(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.8)
    scramble(agg, 0.5)
    items = unit(torch.randn(4, 9, DIM))
    padded, mask = left_padded(items, [9, 5, 1, 0])
    with torch.no_grad():
        batch = agg(padded, mask)
        for row, n in enumerate([9, 5, 1]):
            state = fold_steps(agg, items[row : row + 1, 9 - n :])
            torch.testing.assert_close(agg.readout(state)[0], batch[row], atol=1e-5, rtol=0)
    assert torch.equal(batch[3], torch.zeros(DIM))  # empty history: zero, not NaN


def test_attention_weights_are_softmax_of_query_score_minus_linear_recency() -> None:
    agg = SequenceAggregator(DIM, "attention", max_history=50, recency=0.7)
    scramble(agg, 1.0)
    items = unit(torch.randn(1, 5, DIM))
    with torch.no_grad():
        ages = torch.arange(4, -1, -1, dtype=torch.float32)
        w = torch.softmax(items[0] @ agg.query - agg.decay * ages, 0)  # type: ignore[operator]
        state = fold_steps(agg, items)
        torch.testing.assert_close(state[0, :DIM] / state[0, DIM], w @ items[0])
        torch.testing.assert_close(agg(items)[0], unit(w @ items[0]))


@pytest.mark.parametrize("kind", ["attention", "gru"])
def test_init_aggregators_follow_the_frozen_decayed_fold(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.9)
    items = unit(torch.randn(1, 12, DIM))
    folded = None
    for x in items[0].numpy():
        folded = fold(folded, x, 1.0, 0.9)  # the adapter-free recommender's user vector
    assert folded is not None
    expected = torch.from_numpy(folded / np.linalg.norm(folded))
    with torch.no_grad():
        got = agg(items)[0]
    if kind == "attention":  # zero query: exactly the decayed fold
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    else:  # tanh(x) ~ x for the small coordinates of a unit vector
        assert float(got @ expected) >= 0.99


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_batch_path_reads_only_max_history_most_recent(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=3, recency=0.5)
    scramble(agg, 0.5)
    items = unit(torch.randn(2, 7, DIM))
    with torch.no_grad():
        torch.testing.assert_close(agg(items), agg(items[:, -3:]))
        # the never-windowed incremental state differs once the history is longer
        assert (agg.readout(fold_steps(agg, items)) - agg(items)).abs().max() > 1e-4


def test_step_is_pure() -> None:
    for kind in ("mean", "attention", "gru"):
        agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.9)
        state = agg.step(agg.initial_state(2), unit(torch.randn(2, DIM)))
        kept = state.clone()
        agg.step(state, unit(torch.randn(2, DIM)))
        assert torch.equal(state, kept) and state.shape == (2, agg.state_size)


def test_model_step_items_matches_the_batch_user() -> None:
    model = RecAdapter(cfg(aggregator="attention")).eval()
    scramble(model)
    history = torch.randn(3, 6, DIM)
    books = model.scenario_index("books")
    with torch.no_grad():
        state = model.initial_state(3)
        for t in range(6):
            state = model.step_items(state, model.project(history[:, t], books))
        torch.testing.assert_close(
            model.readout(state), user_vectors(model, history, None, books), atol=1e-5, rtol=0
        )


def test_per_row_scenarios_match_row_by_row_calls() -> None:
    model = RecAdapter(cfg(aggregator="gru")).eval()
    scramble(model)
    names = ["books", "shared", "music"]
    idx = model.scenario_indices(names)
    history, pos, neg = torch.randn(3, 4, DIM), torch.randn(3, DIM), torch.randn(3, 2, DIM)
    mask = torch.tensor([[True] * 4, [False, True, True, True], [False, False, False, True]])
    with torch.no_grad():
        users = user_vectors(model, history, mask, idx)
        for i, sc in enumerate(idx.tolist()):
            one = user_vectors(model, history[i : i + 1], mask[i : i + 1], sc)
            torch.testing.assert_close(users[i : i + 1], one, atol=1e-6, rtol=0)
        assert (users[0] - user_vectors(model, history[:1], mask[:1], 0)[0]).abs().max() > 1e-4
        per_row = training_loss(model, history, pos, neg.reshape(-1, DIM), names)
        assert not torch.isclose(per_row, training_loss(model, history, pos, neg.reshape(-1, DIM)))


# -- loss --------------------------------------------------------------------------------


def weighted_steps(
    agg: SequenceAggregator, items: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """(L, d), (L,) -> (state_size,): one weighted `step` per event from the empty state."""
    state = agg.initial_state(1)
    for t in range(items.shape[0]):
        state = agg.step(state, items[t : t + 1], weights[t : t + 1])
    return state[0]


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_the_one_pass_fold_equals_stepping_through_long_weighted_histories(kind: str) -> None:
    """`fold` (the recompute after a version change, in closed form for mean and
    attention) gives the state stepping gives: long histories whose oldest factors
    underflow, zero weights, padding (NaN) that must never be read, an empty row."""
    torch.manual_seed(3)
    agg = SequenceAggregator(DIM, kind, max_history=20, recency=0.8)
    scramble(agg, 1.0)  # a non-zero query: the scores matter, not only the ages
    lengths = [200, 37, 1, 0]
    items = unit(torch.randn(len(lengths), 200, DIM))
    weights = torch.rand(len(lengths), 200) * 3
    weights[0, 150] = 0.0  # a zero-weight event still ages the ones before it
    weights[1, -1] = 0.0
    padded, mask = left_padded(items, lengths)
    with torch.no_grad():
        folded = agg.fold(padded, weights, mask)
        for row, n in enumerate(lengths):
            want = weighted_steps(agg, items[row, 200 - n :], weights[row, 200 - n :])
            torch.testing.assert_close(folded[row], want, atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(
                agg.readout(folded[row : row + 1]), agg.readout(want[None]), atol=1e-5, rtol=0
            )
    assert torch.all(torch.isfinite(folded))


@pytest.mark.parametrize("kind", ["mean", "attention"])
def test_the_numpy_serving_step_equals_the_torch_step(kind: str) -> None:
    """What a server folds each wave with (`serving_step`) is `step` in numpy: the same
    states over a run of events, zero weights and large ones included."""
    torch.manual_seed(4)
    agg = SequenceAggregator(DIM, kind, max_history=20, recency=0.8)
    scramble(agg, 1.0)
    serving = agg.serving_step()
    assert serving is not None
    items = unit(torch.randn(30, 3, DIM))
    weights = torch.rand(30, 3) * 5
    weights[4, 1] = 0.0
    weights[9, 2] = 1e6
    with torch.no_grad():
        state = agg.initial_state(3)
        mine = state.numpy().copy()
        for t in range(30):
            state = agg.step(state, items[t], weights[t])
            mine = serving(mine, items[t].numpy(), weights[t].numpy())
            torch.testing.assert_close(torch.from_numpy(mine), state, atol=1e-5, rtol=1e-5)
    assert SequenceAggregator(DIM, "gru", max_history=20, recency=0.8).serving_step() is None
