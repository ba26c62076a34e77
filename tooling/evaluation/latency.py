"""Latency percentiles: the one definition every latency table and plot of streamrec's
tooling uses (``streamrec demo``, ``streamrec bench``, the eval report and its plots).

Nearest-rank percentiles: the q-th percentile of N values is the ceil(q/100 * N)-th
smallest value (the smallest for q = 0), always one of the values measured, never an
interpolation between two. In: the ``latency_ms`` of every recommendation message of
one run (any order). Out: :func:`percentile`, or a :class:`LatencySummary` with count,
mean, p50/p95/p99 and max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES_NOTE = "nearest-rank percentiles"  # how every latency table names its columns


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 <= q <= 100) of ``values`` (non-empty).

    >>> percentile([15, 20, 35, 40, 50], 30)  # ceil(0.3 * 5) = 2nd smallest
    20.0
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within [0, 100], not {q}")
    if len(values) == 0:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    # round(): q / 100 * N computed in floats may land a hair above an integer rank.
    rank = math.ceil(round(q / 100 * len(ordered), 9))
    return float(ordered[max(rank, 1) - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds over ``count`` recommendations (nearest-rank percentiles)."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


def check_latencies(latencies_ms: Sequence[float], what: str = "latencies") -> None:
    """Raise ValueError unless ``latencies_ms`` is non-empty, finite and >= 0."""
    if len(latencies_ms) == 0:
        raise ValueError(f"{what}: no latencies given")
    bad = [x for x in latencies_ms if not math.isfinite(x) or x < 0]
    if bad:
        raise ValueError(f"{what}: latencies must be finite and >= 0 ms, got {bad[:3]}")


def latency_summary(latencies_ms: Sequence[float]) -> LatencySummary:
    """Summary of ``latencies_ms`` (non-empty, finite, >= 0; else ValueError)."""
    check_latencies(latencies_ms)
    values = [float(v) for v in latencies_ms]
    return LatencySummary(
        count=len(values),
        mean=math.fsum(values) / len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        max=max(values),
    )
