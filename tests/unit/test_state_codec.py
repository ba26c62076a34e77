"""The users table's codec: typed `UserState` in, versioned JSON out, and back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from faust.serializers.codecs import get_codec

from streams.user_state import STATE_FORMAT, StateFormatError, decode_state, encode_state, seen_at
from workers.recommend_io import UserState


def through_json(state: UserState) -> UserState | None:
    """The state as the table stores it (bytes), and as parsed JSON (an older worker's
    table gave dicts): both ways read it the same."""
    stored = encode_state(state, seen=1.0)
    back = decode_state("u", stored)
    parsed = decode_state("u", json.loads(stored))
    assert back is not None and parsed is not None
    assert (back.history, back.weights, back.pending, back.recent_events) == (
        parsed.history,
        parsed.weights,
        parsed.pending,
        parsed.recent_events,
    )
    return back


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
    stored = encode_state(UserState(vector=np.array([1.0], dtype=">f4")), seen=1234.5)
    assert seen_at(stored) == 1234.5
    value = json.loads(stored)
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
@pytest.mark.parametrize("stored_as", ["parsed", "bytes"])
def test_unknown_or_malformed_states_are_rejected_with_a_reason(
    value: Any, reason: str, stored_as: str
) -> None:
    given = json.dumps(value).encode() if stored_as == "bytes" else value
    with pytest.raises(StateFormatError, match=reason) as err:
        decode_state("user-9", given)
    assert "user-9" in str(err.value)


@pytest.mark.parametrize("value", [b"", b"{", b"\xff\xfe", b"[1, 2", b'{"format": 3'])
def test_stored_bytes_that_are_not_json_are_rejected_with_a_reason(value: bytes) -> None:
    with pytest.raises(StateFormatError, match="not JSON") as err:
        decode_state("user-9", value)
    assert "user-9" in str(err.value)
    assert seen_at(value) is None


def test_states_written_by_faust_json_codec_and_by_this_worker_read_both_ways() -> None:
    """Workers before session 31 stored dicts through Faust's "json" codec; the table now
    stores encode_state's bytes. The changelog holds the same JSON either way, so a
    rolling upgrade reads what the other version wrote."""
    codec = get_codec("json")
    state = UserState(history=["a", "b"], weights=[2.0, 1.0], pending=["b"], events=2)
    stored = encode_state(state, seen=5.0)
    old_worker_reads = codec.loads(stored)
    assert old_worker_reads["history"] == ["a", "b"] and old_worker_reads["seen"] == 5.0
    old_worker_wrote = codec.dumps(old_worker_reads)
    for value in (stored, old_worker_wrote):
        back = decode_state("u", value)
        assert back is not None and (back.history, back.weights, back.pending) == (
            ["a", "b"],
            [2.0, 1.0],
            ["b"],
        )
        assert seen_at(value) == 5.0
