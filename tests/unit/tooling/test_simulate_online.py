"""The study simulator's per-row summaries: paired hit ranks and the stream's score."""

from __future__ import annotations

import pytest

from tooling.simulate_online import _hits, _weighted


def test_hits_keep_the_rank_of_each_hit_and_leave_misses_out() -> None:
    lists = {"a": ["x", "y", "z"], "b": ["x", "y"], "c": ["q"]}
    targets = {"a": "z", "b": "w", "c": "q", "d": "x"}  # d has no list: a miss

    assert _hits(lists, targets) == {"a": 2, "c": 0}


def test_hits_only_count_the_top_k() -> None:
    assert _hits({"a": ["x", "y", "z"]}, {"a": "z"}, k=2) == {}


def test_the_stream_score_weighs_each_round_by_its_held_out_samples() -> None:
    assert _weighted([(0.1, 1000), (0.4, 500)]) == pytest.approx(0.2)
    assert _weighted([]) is None
