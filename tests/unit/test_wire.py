"""What crosses an actor boundary per micro-batch pickles compactly and comes back equal."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from workers.recommend_io import Batch, EventIn, Events, RecResult, UserState, UserStates
from workers.store.base import Hit, SearchRequest
from workers.training import Sample
from workers.wire import HitLists, SearchRequests, VectorMap


def _round_trip(obj: Any) -> tuple[Any, int]:
    """(obj pickled and unpickled as Ray does, protocol 5; its out-of-band buffers)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=buffers), len(buffers)


def _state(n: int, dim: int) -> UserState:
    history = [f"i{n}", f"i{n + 1}"]
    vector = np.arange(dim, dtype=np.float32) + n
    return UserState(history, [1.0, 0.5], [f"i{n + 1}"], [f"e{n}"], vector, 2, "films", 3)


def test_vector_map_is_a_read_only_mapping_that_pickles_as_one_matrix() -> None:
    vectors = {f"i{n}": np.full(4, n, dtype=np.float32) for n in range(50)}
    packed = VectorMap(list(vectors), np.stack(list(vectors.values())))
    assert list(packed) == list(vectors) and len(packed) == 50 and "i7" in packed
    assert "nope" not in packed and packed.get("nope") is None
    with pytest.raises(ValueError):
        packed["i3"][0] = 1.0
    back, buffers = _round_trip(packed)
    assert buffers == 1  # one matrix, not 50 arrays
    for item_id, vector in vectors.items():
        np.testing.assert_array_equal(back[item_id], vector)
    assert len(VectorMap([], np.zeros((0, 4), dtype=np.float32))) == 0


def test_hit_lists_keep_order_lengths_and_exact_scores() -> None:
    scores = np.array([0.123456789, 0.5, -0.25], dtype=np.float32)
    lists = [
        [Hit("a", float(scores[0])), Hit("b", float(scores[1]))],
        [],
        [Hit("c", float(scores[2]))],
    ]
    packed = HitLists.of(lists)
    assert packed == lists and len(packed) == 3 and packed[-1] == lists[-1]
    assert packed.pairs(0) == [("a", float(scores[0])), ("b", float(scores[1]))]
    assert packed.pairs(1) == []
    with pytest.raises(IndexError):
        packed[3]
    back, buffers = _round_trip(packed)
    assert back == lists and buffers == 1


def test_a_batch_with_states_of_two_model_versions_comes_back_equal() -> None:
    # A state of another version can have another vector length: one matrix per length.
    states = {f"u{n}": _state(n, 8 if n % 3 else 12) for n in range(30)}
    states["blank"] = UserState()
    results = [
        RecResult(f"e{n}", f"u{n}", [(f"i{n}", 0.5 - n / 100)] * (n % 4), 3) for n in range(30)
    ]
    samples = [Sample((f"i{n}", "i0"), f"i{n + 2}", "films", f"u{n}") for n in range(30)]
    samples.append(Sample(("i1",), "i2"))  # no user: a simulation's sample
    back, buffers = _round_trip(Batch(results, states, samples, ran=(1000.25, 1000.5)))
    assert buffers <= 3  # two state matrices and the scores, not 30 arrays
    assert back.results == results and back.samples == samples
    assert back.ran == (1000.25, 1000.5)  # the recommender's clock, for the caller's parts
    assert back.states.keys() == states.keys()
    for uid, state in states.items():
        got = back.states[uid]
        assert (got.history, got.weights, got.pending, got.recent_events) == (
            state.history,
            state.weights,
            state.pending,
            state.recent_events,
        )
        assert (got.events, got.scenario, got.version) == (
            state.events,
            state.scenario,
            state.version,
        )
        if state.vector is None:
            assert got.vector is None
        else:
            np.testing.assert_array_equal(got.vector, state.vector)


def test_a_request_comes_back_equal_with_new_users_as_none() -> None:
    events = Events(
        [EventIn("e1", "u1", "i1"), EventIn("e2", "u2", "i2", "music", 2.0, "a review", False)]
    )
    states = UserStates({"u1": _state(1, 8), "u2": None})
    (back_events, back_states), buffers = _round_trip((events, states))
    assert list(back_events) == list(events) and buffers == 1
    assert back_states["u2"] is None
    np.testing.assert_array_equal(back_states["u1"].vector, states["u1"].vector)
    assert back_states["u1"].history == states["u1"].history


def test_search_requests_come_back_equal_with_one_matrix_per_vector_length() -> None:
    asked = SearchRequests(
        SearchRequest(np.full(8 if n % 4 else 5, n, dtype=np.float32), 10, "films", (f"i{n}",))
        for n in range(20)
    )
    asked.append(SearchRequest(np.ones(8, dtype=np.float32), 3, None, [], "rec", True))
    back, buffers = _round_trip(asked)
    assert buffers == 2 and len(back) == len(asked)
    for got, sent in zip(back, asked, strict=True):
        np.testing.assert_array_equal(got.vector, sent.vector)
        assert (got.k, got.scenario, tuple(got.exclude), got.using, got.exact) == (
            sent.k,
            sent.scenario,
            tuple(sent.exclude),
            sent.using,
            sent.exact,
        )
