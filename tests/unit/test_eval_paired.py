"""Paired comparisons: per-unit differences, their standard error, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tooling.evaluation import ndcg_gains, paired_difference


def test_gains_follow_the_rank_of_each_hit() -> None:
    gains = ndcg_gains({"a": 0, "c": 2}, ["a", "b", "c"])
    assert gains.tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_a_shift_shared_by_every_unit_has_no_error() -> None:
    base = np.array([0.0, 0.5, 0.25, 0.75])  # exact in binary, as is base + 0.25
    result = paired_difference([base], [base + 0.25])
    assert result.diff == 0.25
    assert result.se == pytest.approx(0.0, abs=1e-12)
    assert result.z == math.inf


def test_the_error_is_that_of_the_per_unit_differences() -> None:
    base, candidate = [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]
    result = paired_difference([base], [candidate])
    assert (result.base, result.candidate, result.diff) == pytest.approx((0.0, 0.5, 0.5))
    assert result.se == pytest.approx(np.std([1, 0, 1, 0], ddof=1) / 2)
    assert result.z == pytest.approx(0.5 / result.se)


def test_seeds_are_averaged_per_unit_before_the_difference() -> None:
    result = paired_difference([[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
    assert result.diff == pytest.approx(0.5)
    assert result.se == pytest.approx(0.0, abs=1e-12)


def test_sides_must_match() -> None:
    with pytest.raises(ValueError, match="same number"):
        paired_difference([[0.0, 1.0]], [])
    with pytest.raises(ValueError, match="same >= 2 units"):
        paired_difference([[0.0, 1.0]], [[0.0, 1.0, 2.0]])
