"""Incremental user embedding arithmetic (pure numpy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workers.user_math import (
    bounded_history,
    decode_vector,
    encode_vector,
    fold,
    is_usable,
    normalized,
)


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_fold_from_empty_state_is_weighted_unit_item() -> None:
    out = fold(None, vec(3.0, 4.0), weight=2.0, recency=0.5)
    np.testing.assert_allclose(out, [1.2, 1.6], rtol=1e-6)
    assert out.dtype == np.float32


def test_fold_decays_previous_vector_exactly() -> None:
    v = vec(1.0, 2.0, -1.0)
    x = vec(0.0, 0.0, 5.0)
    out = fold(v, x, weight=0.5, recency=0.9)
    np.testing.assert_allclose(out, 0.9 * v + 0.5 * vec(0.0, 0.0, 1.0), rtol=1e-6)
    assert out.dtype == np.float32


def test_fold_item_scale_does_not_matter() -> None:
    v = vec(0.3, -0.2)
    np.testing.assert_allclose(fold(v, vec(1.0, 1.0), 1.0, 0.8), fold(v, vec(50.0, 50.0), 1.0, 0.8))


def test_fold_sequence_weights_recent_items_more() -> None:
    a, b = vec(1.0, 0.0), vec(0.0, 1.0)
    v = fold(fold(None, a, 1.0, 0.5), b, 1.0, 0.5)
    np.testing.assert_allclose(v, [0.5, 1.0])
    assert v[1] > v[0]


def test_fold_and_normalized_never_mutate_inputs() -> None:
    v, x = vec(1.0, 2.0), vec(3.0, 4.0)
    v_before, x_before = v.copy(), x.copy()
    out = fold(v, x, 1.0, 0.5)
    unit = normalized(x)
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_array_equal(x, x_before)
    assert out is not v
    assert unit is not x
    zero = vec(0.0, 0.0)
    assert normalized(zero) is not zero


def test_fold_of_zero_item_only_decays() -> None:
    v = vec(2.0, 2.0)
    np.testing.assert_allclose(fold(v, vec(0.0, 0.0), 1.0, 0.5), [1.0, 1.0])


def test_normalized_gives_unit_length() -> None:
    out = normalized(vec(3.0, 4.0))
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-6)
    assert out.dtype == np.float32


def test_normalized_of_zero_vector_stays_zero() -> None:
    out = normalized(vec(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    ("vector", "usable"),
    [
        (None, False),
        (vec(0.0, 0.0), False),
        (vec(np.nan, 1.0), False),
        (vec(np.inf, 1.0), False),
        (vec(1e-3, 0.0), True),
        (vec(-1.0, 0.0), True),
    ],
)
def test_is_usable(vector: np.ndarray | None, usable: bool) -> None:
    assert is_usable(vector) is usable


def test_bounded_history_appends() -> None:
    assert bounded_history(["a", "b"], "c", 10) == ["a", "b", "c"]


def test_bounded_history_moves_repeat_to_end_without_duplicates() -> None:
    assert bounded_history(["a", "b", "c"], "a", 10) == ["b", "c", "a"]


def test_bounded_history_keeps_last_n() -> None:
    assert bounded_history(["a", "b", "c"], "d", 2) == ["c", "d"]
    assert bounded_history([], "x", 1) == ["x"]


def test_bounded_history_does_not_mutate_input() -> None:
    history = ["a", "b"]
    bounded_history(history, "a", 1)
    assert history == ["a", "b"]


def test_encode_decode_round_trip_is_bit_exact() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal(384).astype(np.float32)
    v[0] = np.float32(1e-38)  # subnormal-ish values survive too
    text = encode_vector(v)
    assert isinstance(text, str)
    json.dumps(text)  # JSON-friendly
    out = decode_vector(text)
    assert out is not None
    assert out.dtype == np.float32
    assert out.tobytes() == v.tobytes()


def test_encode_vector_is_little_endian_float32() -> None:
    # The table format: base64 of little-endian float32, independent of the input dtype.
    assert encode_vector(np.array([1.0], dtype=np.float64)) == "AACAPw=="
    assert encode_vector(np.array([1.0], dtype=">f4")) == "AACAPw=="


def test_decoded_vector_is_writable() -> None:
    out = decode_vector(encode_vector(vec(1.0, 2.0)))
    assert out is not None
    out[0] = 5.0  # frombuffer alone would be read-only
    assert out[0] == 5.0


def test_none_round_trips() -> None:
    assert encode_vector(None) is None
    assert decode_vector(None) is None
