"""Latency percentiles of the recommendations served on the stream.

In: the ``latency_ms`` of every recommendation message of one run (any order). Out: a
:class:`LatencySummary` with count, mean, p50/p95/p99 and max. Percentiles are
numpy's default linear interpolation between the closest ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds over ``count`` recommendations."""

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
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return LatencySummary(
        count=len(values),
        mean=float(values.mean()),
        p50=p50,
        p95=p95,
        p99=p99,
        max=float(values.max()),
    )
