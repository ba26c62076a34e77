"""The bench's paced phases share what the firehose leaves of the dataset, and the phase at
the issue's fixed rate always gets its full length."""

from __future__ import annotations

import pytest

from tooling.bench import PACED_SECONDS, paced_sizes


def test_a_fast_firehose_leaves_the_fixed_rate_phase_its_events() -> None:
    # ML-100K, a 20,000-event firehose at 4,100 events/s: 20 s at half rate would be
    # 82,000 events, more than the 80,000 left; the 1,000/s phase once got none.
    paced, at_rate = paced_sizes(100_000, 20_000, 4_100.0, 1_000.0)
    assert at_rate == 1_000 * PACED_SECONDS
    assert paced == 80_000 - at_rate
    assert 20_000 + paced + at_rate <= 100_000


def test_a_slow_firehose_takes_twenty_seconds_of_its_rate() -> None:
    assert paced_sizes(100_000, 20_000, 3_000.0, 1_000.0) == (60_000, 1_000 * PACED_SECONDS)
    assert paced_sizes(100_000, 20_000, 5.0, 1_000.0) == (200, 1_000 * PACED_SECONDS)


def test_too_few_events_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="use fewer --events"):
        paced_sizes(30_000, 20_000, 3_000.0, 1_000.0)
