"""The scaling bench's bound for more workers: the broker's share of the event path's CPU
and Amdahl's law."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tooling.scaling_bound import amdahl, serial_fraction

# One worker's firehose on 2 cores, session 42 (`make bench`): ms of CPU per event.
SPLIT = {
    "Catalog": 0.029,
    "Recommender": 0.09,
    "TextEncoder": 0.002,
    "TrainerService": 0.084,
    "broker": 0.016,
    "worker": 0.104,
}


def test_the_serial_fraction_is_the_brokers_share_of_the_event_path() -> None:
    # The trainer, catalog writer and encoder are off the event path: not counted.
    assert serial_fraction(SPLIT) == pytest.approx(0.016 / (0.016 + 0.104 + 0.09))


def test_a_split_without_the_event_path_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks"):
        serial_fraction({"worker": 0.1, "Recommender": 0.1})
    with pytest.raises(ValueError, match="no CPU"):
        serial_fraction({"worker": 0.0, "Recommender": 0.0, "broker": 0.0})


def test_amdahl_at_its_ends() -> None:
    assert amdahl(0.0, 32) == pytest.approx(32.0)
    assert amdahl(1.0, 32) == pytest.approx(1.0)
    assert amdahl(0.076, 8) == pytest.approx(1 / (0.076 + 0.924 / 8))
    with pytest.raises(ValueError):
        amdahl(1.5, 8)
    with pytest.raises(ValueError):
        amdahl(0.1, 0)


@given(st.floats(0.0, 1.0), st.integers(1, 1000))
def test_more_workers_never_serve_less_nor_beyond_their_number(serial: float, n: int) -> None:
    bound = amdahl(serial, n)
    assert 1.0 - 1e-9 <= bound <= n + 1e-9
    assert amdahl(serial, n + 1) >= bound - 1e-9
    if serial > 0:
        assert bound <= 1.0 / serial + 1e-9
