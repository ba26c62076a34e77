"""Serving latency while a training round runs, and between rounds.

With training on, a round takes the trainer's process to about half a core for a few
seconds (BENCHMARKS.md, session 42); serving slows on the cores it shares. The bench
samples the trainer's CPU time every ``interval`` seconds and cuts the paced phase into
windows of ``WINDOW_S``: a window in which the trainer used more than ``BUSY_CORES`` is a
round's. Each event falls in the window of its produce time. Pure functions: the samples
and latencies come from `tooling.bench_probes.CpuSampler` and the recommendations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Window length, s, and the trainer's CPU (cores) above which a window is a round's.
WINDOW_S, BUSY_CORES = 0.5, 0.3


def busy_windows(
    samples: Sequence[tuple[float, float]], window: float = WINDOW_S, cores: float = BUSY_CORES
) -> list[tuple[float, float]]:
    """[(start, end)] of the windows in which the CPU seconds of ``samples`` ((time,
    cumulative CPU seconds), in time order) grew faster than ``cores``, adjacent busy
    windows merged. Windows start at the first sample; the CPU seconds at their bounds
    are interpolated between samples, and a last window past the last sample is left out."""
    if window <= 0:
        raise ValueError(f"a window must be longer than 0 s: {window}")
    if len(samples) < 2:
        return []
    times = np.array([t for t, _ in samples])
    used = np.array([c for _, c in samples])
    count = int((times[-1] - times[0]) // window)
    bounds = times[0] + window * np.arange(count + 1)
    rates = np.diff(np.interp(bounds, times, used)) / window
    busy: list[tuple[float, float]] = []
    for k in np.flatnonzero(rates > cores):
        start, end = float(bounds[k]), float(bounds[k + 1])
        if busy and busy[-1][1] == start:
            busy[-1] = (busy[-1][0], end)
        else:
            busy.append((start, end))
    return busy


def split(
    events: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """The latencies of ``events`` ((produce time, latency ms)) produced inside one of
    ``windows`` ([start, end)), and those of the rest."""
    inside: list[float] = []
    outside: list[float] = []
    for produced, latency in events:
        hit = any(a <= produced < b for a, b in windows)
        (inside if hit else outside).append(latency)
    return inside, outside
