"""The bench's split of training-on latency into a round's windows and the rest."""

from __future__ import annotations

import pytest

from tooling.round_split import busy_windows, split


def _trainer(
    busy_from: float, busy_to: float, seconds: float = 6.0, step: float = 0.1
) -> list[tuple[float, float]]:
    """Samples every ``step`` s of a trainer at 0.05 cores, 0.6 between the two times."""
    samples: list[tuple[float, float]] = []
    used, t = 0.0, 0.0
    while t <= seconds + 1e-9:
        samples.append((round(t, 6), used))
        used += step * (0.6 if busy_from <= t < busy_to else 0.05)
        t += step
    return samples


def _rounded(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(round(a, 6), round(b, 6)) for a, b in windows]


def test_a_round_is_found_and_its_windows_merged() -> None:
    # Three busy half-seconds in a row are one round.
    assert _rounded(busy_windows(_trainer(2.0, 3.5))) == [(2.0, 3.5)]


def test_a_quiet_trainer_has_no_round() -> None:
    assert busy_windows(_trainer(10.0, 11.0)) == []
    assert busy_windows([(0.0, 0.0)]) == []
    with pytest.raises(ValueError):
        busy_windows(_trainer(1.0, 2.0), window=0.0)


def test_two_rounds_stay_apart() -> None:
    samples = _trainer(1.0, 2.0)
    late = _trainer(4.0, 5.0)
    merged = [(t, a + b) for (t, a), (_, b) in zip(samples, late, strict=True)]
    assert _rounded(busy_windows(merged)) == [(1.0, 2.0), (4.0, 5.0)]


def test_sparse_samples_are_interpolated() -> None:
    # One sample a second, 0.8 cores from 2 to 4 s: every half-second in between is busy.
    samples = [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.8), (4.0, 1.6), (5.0, 1.6)]
    assert busy_windows(samples) == [(2.0, 4.0)]


def test_events_fall_in_the_window_of_their_produce_time() -> None:
    events = [(0.9, 10.0), (1.0, 50.0), (1.49, 60.0), (1.5, 20.0), (3.0, 70.0)]
    inside, outside = split(events, [(1.0, 1.5), (3.0, 3.5)])
    assert inside == [50.0, 60.0, 70.0]
    assert outside == [10.0, 20.0]
