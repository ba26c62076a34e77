"""The one percentile of the tooling: nearest rank, the ceil(q/100 * N)-th smallest value."""

from __future__ import annotations

import math
import random

import pytest

from tooling import bench, demo
from tooling.evaluation import latency_summary, percentile
from tooling.evaluation.latency import PERCENTILES_NOTE


def test_nearest_rank_definition() -> None:
    values = [50.0, 15.0, 40.0, 20.0, 35.0]  # any order; sorted: 15 20 35 40 50
    expected = {0: 15.0, 5: 15.0, 20: 15.0, 30: 20.0, 40: 20.0, 50: 35.0, 99: 50.0, 100: 50.0}
    for q, value in expected.items():
        assert percentile(values, q) == value, q
        rank = max(1, math.ceil(q / 100 * len(values)))
        assert value == sorted(values)[rank - 1]


def test_always_a_measured_value_never_interpolated() -> None:
    assert percentile([1.0, 2.0], 50) == 1.0  # interpolation would give 1.5
    assert percentile([1.0, 2.0], 51) == 2.0
    assert percentile([7.0], 99.9) == 7.0
    rng = random.Random(0)
    values = [rng.uniform(0, 100) for _ in range(37)]
    for q in (0, 1, 25, 50, 90, 95, 99, 99.9, 100):
        assert percentile(values, q) in values


def test_rank_is_not_pushed_up_by_float_noise() -> None:
    # 7 / 100 * 100 == 7.000000000000001 in floats: still the 7th value, not the 8th.
    assert percentile([float(v) for v in range(1, 101)], 7) == 7.0
    assert percentile([float(v) for v in range(1, 1001)], 99.9) == 999.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    for q in (-1, 100.5, math.nan):
        with pytest.raises(ValueError, match=r"\[0, 100\]"):
            percentile([1.0], q)


def test_one_definition_for_demo_bench_and_the_eval_report() -> None:
    assert demo.percentile is percentile
    assert bench.percentile is percentile
    values = [float(v) for v in random.Random(1).sample(range(1000), 64)]
    s = latency_summary(values)
    assert (s.p50, s.p95, s.p99) == tuple(percentile(values, q) for q in (50, 95, 99))
    assert PERCENTILES_NOTE == "nearest-rank percentiles"
