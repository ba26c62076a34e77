"""The users table's codec: typed `UserState` in, versioned JSON out, and back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from streams.schemas import STATE_FORMAT, StateFormatError, decode_state, encode_state, seen_at
from workers.recommend_io import UserState


def through_json(state: UserState) -> UserState | None:
    return decode_state("u", json.loads(json.dumps(encode_state(state, seen=1.0))))


def test_round_trip_is_exact() -> None:
    rng = np.random.default_rng(0)
    vector = rng.standard_normal(384).astype(np.float32)
    vector[0] = np.float32(1e-38)  # subnormal-ish values survive too
    state = UserState(
        history=["a", "b"],
        weights=[2.5, 1.0],
        pending=["b"],
        recent_events=["e1", "e2"],
        vector=vector,
        events=7,
        scenario="movies",
        version=3,
    )
    back = through_json(state)
    assert back is not None and back.vector is not None
    assert (back.history, back.weights, back.pending, back.events, back.scenario) == (
        ["a", "b"],
        [2.5, 1.0],
        ["b"],
        7,
        "movies",
    )
    assert back.version == 3 and back.recent_events == ["e1", "e2"]
    assert back.vector.dtype == np.float32 and back.vector.tobytes() == vector.tobytes()
    back.vector[0] = 5.0  # writable (frombuffer alone would be read-only)
    empty = through_json(UserState())
    assert empty is not None and empty.vector is None and empty.history == []


def test_the_written_format_is_numbered_and_little_endian_and_says_when() -> None:
    value = encode_state(UserState(vector=np.array([1.0], dtype=">f4")), seen=1234.5)
    assert value["format"] == STATE_FORMAT == 3
    assert value["vector"] == "AACAPw=="  # base64 of little-endian float32 1.0
    assert seen_at(value) == 1234.5


def test_format_2_is_read_as_it_is_and_does_not_say_when() -> None:
    value = {**format_1(), "format": 2, "weights": [2.0, 1.0], "recent_events": ["e"]}
    state = decode_state("u", value)
    assert state is not None and state.weights == [2.0, 1.0] and state.recent_events == ["e"]
    assert seen_at(value) is None


def test_no_stored_value_is_a_new_user() -> None:
    assert decode_state("u", None) is None


def format_1() -> dict[str, Any]:
    """A value as workers wrote it before formats were numbered."""
    return {
        "history": ["a", "b"],
        "pending": [],
        "vector": "AACAPw==",
        "events": 2,
        "scenario": "default",
        "version": 0,
    }


def test_format_1_is_upgraded_with_unit_weights() -> None:
    state = decode_state("u", format_1())
    assert state is not None
    assert (state.history, state.weights, state.events) == (["a", "b"], [1.0, 1.0], 2)
    assert state.recent_events == []
    assert state.vector is not None and state.vector.tolist() == [1.0]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({**format_1(), "format": 99}, "format 99"),
        ({"history": ["a"]}, "pending"),  # a field missing: never silently defaulted
        ({**format_1(), "format": 2}, "weights"),
        # 2 items, 1 weight
        ({**format_1(), "format": 2, "weights": [1.0], "recent_events": []}, "weights"),
        ({**format_1(), "format": 2, "weights": [1.0, 1.0]}, "recent_events"),
        ({**format_1(), "format": 3, "weights": [1.0, 1.0], "recent_events": []}, "seen"),
        ({**format_1(), "vector": "not base64!"}, "vector|Invalid|base64"),
        ({**format_1(), "pending": ["zz"]}, "pending"),
        ("a string", "not an object"),
    ],
)
def test_unknown_or_malformed_states_are_rejected_with_a_reason(value: Any, reason: str) -> None:
    with pytest.raises(StateFormatError, match=reason) as err:
        decode_state("user-9", value)
    assert "user-9" in str(err.value)
