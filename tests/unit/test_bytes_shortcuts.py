"""The decoders' shortcuts through pydantic's JSON parser, held to the parsed way.

An `events` record and a stored user state are validated straight from their bytes
when nothing in them could read otherwise; for any input, each shortcut gives what
Python's parser and the models give: the same record or state, or the same reason.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, find, given, settings
from hypothesis import strategies as st

from streams.record_limits import load_json, plain_json
from streams.schemas import (
    InvalidRecord,
    decode_event,
    decode_events_record,
    dumps,
    events_record_of,
)
from streams.user_state import StateFormatError, decode_state, encode_state
from tests.unit.test_decoder_properties import (
    FAST,
    LIMITS,
    event_like,
    json_values,
    numbers,
    render,
    stored_states,
    valid_ids,
)
from workers.recommend_io import UserState

#: Any character a decoded UTF-8 string can hold (no lone surrogates).
stored_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))

# -- the users table's values ----------------------------------------------------------


def state_outcome(value: Any) -> tuple[Any, ...]:
    try:
        state = decode_state("u", value)
    except StateFormatError as exc:
        return ("invalid", str(exc))
    if state is None:
        return (None,)
    vector = None if state.vector is None else state.vector.tobytes()
    fields = (state.history, state.weights, state.pending, state.recent_events)
    return ("state", repr(fields), vector, state.events, state.scenario, state.version)


written_states = st.builds(
    lambda history, extra, seen: {
        **json.loads(
            encode_state(
                UserState(history=history, weights=[2.0] * len(history), pending=history[:1]),
                seen=seen,
            )
        ),
        **extra,
    },
    # a worker's own history ids came from UTF-8 JSON: no lone surrogates, which
    # encode_state cannot write (hypothesis found one: '\ud800')
    st.lists(st.text(stored_char, max_size=6), max_size=4, unique=True),
    st.fixed_dictionaries({}, optional={"version": numbers, "vector": st.just("AACAPw==")}),
    st.one_of(numbers, st.floats(0, 2e9)),
)
stored_values = st.one_of(
    written_states, stored_states, stored_states.map(lambda v: {**v, "format": 3}), json_values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored_values)
def test_a_stored_state_reads_the_same_from_its_bytes_as_parsed(value: Any) -> None:
    """The table stores bytes, which decode_state validates straight from the JSON when
    they hold the current format: it gives the state or the reason the parsed way gives."""
    assume(value is not None)  # None is no value (a deleted state), b"null" is not a state
    stored = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert state_outcome(stored) == state_outcome(json.loads(stored))


def test_the_state_strategies_reach_states_read_from_their_bytes() -> None:
    def read_from_bytes(value: Any) -> bool:
        stored = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return state_outcome(stored)[0] == "state" and value.get("format") == 3

    assert read_from_bytes(find(stored_values, read_from_bytes))


@FAST
@given(st.binary(max_size=300))
def test_any_stored_bytes_give_a_state_or_a_state_format_error(value: bytes) -> None:
    assert state_outcome(value)[0] in ("invalid", "state", None)


# -- the events decoder's shortcut ------------------------------------------------------
# Records as producers write them: bytes, mostly plain (the shortcut's case), some with
# what only Python's parser reads (NaN, Infinity, exponents, huge or long numbers, a BOM,
# raw controls, repeated keys), in a known field or an unknown one.
plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.text(max_size=20),
)
oddities = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1E400",
        "1e3",
        "2.5e-3",
        "1" * 400,
        "1" * 5000,
        "0." + "1" * 30,
        "-0",
        "-0.0",
        "01",
        '"\\ud800"',
        '"a\\u0000b"',
        '"\\u00e9"',
        "[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
        '"x"',
        "true",
        "{}",
    ]
)


@st.composite
def producer_bytes(draw: st.DrawFn) -> bytes:
    record = (
        draw(event_like())
        if draw(st.booleans())
        else {
            "user_id": draw(valid_ids),
            "item_id": draw(valid_ids),
            "ts": draw(st.one_of(st.integers(0, 4_000_000_000), st.floats(0, 4.1e9))),
            **draw(st.dictionaries(st.sampled_from(["event_id", "scenario"]), valid_ids)),
            **draw(st.dictionaries(st.just("type"), st.sampled_from(["forget", "click"]))),
            **draw(st.dictionaries(st.sampled_from(["weight", "extra", "text", "learn"]), plain)),
        }
    )
    text = render(record, draw(st.booleans()))
    if draw(st.booleans()):  # an odd value for a known field or an unknown one
        field = draw(st.sampled_from(["ts", "weight", "user_id", "learn", "extra", "other"]))
        text = text[:-1] + f', "{field}": {draw(oddities)}' + "}"
    prefix = draw(st.sampled_from(["", "", " ", "\ufeff", '{"user_id": "dup", ']))
    if prefix.startswith("{"):
        text = prefix + text[1:]
    else:
        text = prefix + text + draw(st.sampled_from(["", "", "\n", "\t", " x", "\x00"]))
    return text.encode("utf-8", "surrogatepass")


def outcome(decode: Any) -> tuple[str, Any]:
    """What a decoder gives: the record's type and contract JSON, or its reason."""
    try:
        record = decode()
    except InvalidRecord as exc:
        return "invalid", str(exc)
    return type(record).__name__, dumps(record)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(producer_bytes(), st.binary(max_size=300)))
def test_the_events_decoders_shortcut_gives_what_the_parsed_way_gives(raw: bytes) -> None:
    """`decode_events_record` takes pydantic's JSON parser for plain records: whatever the
    bytes, it gives the record or the reason that Python's parser and the contract give."""
    parsed = outcome(
        lambda: events_record_of(load_json(raw, LIMITS), default_event_id="d", limits=LIMITS)
    )
    assert outcome(lambda: decode_events_record(raw, default_event_id="d", limits=LIMITS)) == parsed
    if parsed[0] == "Event" or not is_forget(raw):  # decode_event knows no forget
        assert outcome(lambda: decode_event(raw, default_event_id="d", limits=LIMITS)) == parsed


def is_forget(raw: bytes) -> bool:
    try:
        data = load_json(raw, LIMITS)
    except InvalidRecord:
        return False
    return isinstance(data, dict) and data.get("type") == "forget"


def test_the_shortcut_is_taken_by_plain_records_and_refused_otherwise() -> None:
    """The property above compares two ways only where both are drawn."""
    plain = b'{"user_id": "196", "item_id": "242", "ts": 881250949, "weight": 3.0}'
    assert plain_json(plain, LIMITS) is plain
    for odd in (b'"x": NaN', b'"x": -Infinity', b'"x": 1e400', b'"x": 1E2', b'"x": ' + b"9" * 16):
        assert plain_json(plain[:-1] + b", " + odd + b"}", LIMITS) is None
    assert plain_json(plain.decode(), LIMITS) is None  # a str may hold a raw lone surrogate
    assert plain_json(b'{"a": "\\ud800"}', LIMITS) is None
    assert plain_json(b"[" * 17 + b"]" * 17, LIMITS) is None

    def shortcut(raw: bytes) -> bool:
        return plain_json(raw, LIMITS) is not None

    def accepted_by_shortcut(raw: bytes) -> bool:
        return (
            shortcut(raw)
            and outcome(lambda: decode_events_record(raw, default_event_id="d", limits=LIMITS))[0]
            == "Event"
        )

    def refused_after_shortcut(raw: bytes) -> bool:  # plain bytes, an invalid record
        return (
            shortcut(raw)
            and outcome(lambda: decode_events_record(raw, default_event_id="d", limits=LIMITS))[0]
            == "invalid"
        )

    assert accepted_by_shortcut(find(producer_bytes(), accepted_by_shortcut))
    assert refused_after_shortcut(find(producer_bytes(), refused_after_shortcut))
