"""Properties of every decoder, for any input (hypothesis).

Each decoder ends one of two ways: a record within the contract and its limits, which
can be written back (re-encoded as UTF-8 JSON, used as a Kafka key), or its own error
type with a reason. No input escapes as another exception: not arbitrary bytes, not
JSON of any shape, depth, number size or string content (controls, lone surrogates).
A dead letter built from anything fits the producer's limit.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from streams.deadletters import letter
from streams.schemas import (
    ERROR_LIMIT,
    KEY_LIMIT,
    RAW_LIMIT,
    Event,
    InvalidRecord,
    ItemRecord,
    KeyedEvent,
    SourceRef,
    decode_event,
    decode_item,
    dumps,
)
from streams.settings import LimitsConfig
from streams.user_state import StateFormatError, decode_state, encode_state
from workers.recommend_io import UserState

LIMITS = LimitsConfig(id_bytes=40, scenario_bytes=20, text_chars=50, attributes=5)
PRODUCER_LIMIT = 1_048_576
SOURCE = SourceRef(topic="events", partition=0, offset=0, key=None, timestamp=1.0)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
any_text = st.text(any_char, max_size=80)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included
    st.sampled_from([0, -1, 1e39, 1e308, -1e12, 1e300, 1.7e12, 4_102_444_801]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
nesting = st.integers(min_value=1, max_value=3000).map(lambda d: "[" * d + "]" * d)
valid_ids = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
ids = st.one_of(
    valid_ids,
    st.sampled_from(["u1", "i1", " padded ", "", "a\x00b", "x" * 41, "é🚀"]),
    any_text,
    st.integers(),
)
timestamps = st.one_of(
    st.floats(min_value=0, max_value=4.1e9), st.integers(0, 4_000_000_000), numbers, json_values
)


def render(value: Any, ascii_only: bool) -> str:
    """JSON text of ``value`` (NaN and infinities as Python writes them)."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "user_id": draw(st.one_of(valid_ids, ids)),
        "item_id": draw(st.one_of(valid_ids, ids)),
        "ts": draw(timestamps),
    }
    for name, values in [
        ("event_id", ids),
        ("type", ids),
        ("scenario", ids),
        ("weight", st.one_of(numbers, st.floats(min_value=0.001, max_value=2000))),
        ("text", st.one_of(st.text(max_size=200), any_text, json_values)),
        ("extra", json_values),
    ]:
        if draw(st.booleans()):
            record[name] = draw(values)
    return record


@st.composite
def item_like(draw: st.DrawFn) -> dict[str, Any]:
    text = draw(st.one_of(st.text(max_size=200), any_text, ids))
    record: dict[str, Any] = {"item_id": draw(st.one_of(valid_ids, ids)), "text": text}
    attribute = st.one_of(st.text(max_size=10), st.integers(-5, 5), json_values)
    for name, values in [
        ("scenario", ids),
        ("ts", timestamps),
        ("attributes", st.dictionaries(st.one_of(valid_ids, any_text), attribute, max_size=7)),
        ("extra", json_values),
    ]:
        if draw(st.booleans()):
            record[name] = draw(values)
    return record


def raw_values(records: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes | str]:
    as_json = st.builds(render, records, st.booleans())
    deep = st.builds(lambda r, n: render(r, True)[:-1] + ', "deep": ' + n + "}", records, nesting)
    return st.one_of(as_json, deep, st.binary(max_size=300), any_text)


def assert_id_within(value: str | None, limit: int) -> None:
    if value is None:
        return
    assert 1 <= len(value.encode("utf-8")) <= limit
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    value.encode("utf-8")  # a Kafka key


@FAST
@given(raw_values(event_like()))
def test_decode_event_gives_an_event_within_limits_or_a_reason(raw: bytes | str) -> None:
    try:
        event = decode_event(raw, default_event_id="d", limits=LIMITS)
    except InvalidRecord as exc:
        assert str(exc)
        return
    assert isinstance(event, Event)
    for value in (event.event_id, event.user_id, event.item_id, event.type):
        assert_id_within(value, LIMITS.id_bytes)
    assert_id_within(event.scenario, LIMITS.scenario_bytes)
    assert 0 < event.weight <= LIMITS.weight_max
    assert LIMITS.ts_min <= event.ts <= LIMITS.ts_max
    assert event.text is None or len(event.text) <= LIMITS.text_chars
    keyed = KeyedEvent(event=event, source=SOURCE)
    assert KeyedEvent.model_validate_json(dumps(keyed)) == keyed  # it can be written back


@FAST
@given(raw_values(item_like()))
def test_decode_item_gives_an_item_within_limits_or_a_reason(raw: bytes | str) -> None:
    try:
        item = decode_item(raw, limits=LIMITS)
    except InvalidRecord as exc:
        assert str(exc)
        return
    assert isinstance(item, ItemRecord)
    assert_id_within(item.item_id, LIMITS.id_bytes)
    assert_id_within(item.scenario, LIMITS.scenario_bytes)
    assert 1 <= len(item.text) <= LIMITS.text_chars
    assert item.ts is None or LIMITS.ts_min <= item.ts <= LIMITS.ts_max
    assert item.attributes is None or len(item.attributes) <= LIMITS.attributes
    assert ItemRecord.model_validate_json(dumps(item)) == item


@FAST
@given(st.one_of(st.binary(max_size=300), any_text, raw_values(event_like())))
def test_the_by_user_decoder_raises_only_value_errors(raw: bytes | str) -> None:
    try:
        keyed = KeyedEvent.model_validate_json(raw)
    except ValueError:
        return
    assert isinstance(keyed, KeyedEvent)


stored_states = st.fixed_dictionaries(
    {},
    optional={
        "format": st.one_of(st.sampled_from([1, 2, 3, 4]), json_values),
        "history": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
        "weights": st.one_of(st.lists(st.floats(), max_size=3), json_values),
        "pending": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
        "recent_events": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
        "vector": st.one_of(st.none(), st.sampled_from(["", "AAAA", "AACAPw==", "!"]), any_text),
        "events": numbers,
        "scenario": ids,
        "version": numbers,
        "seen": numbers,
    },
)


@FAST
@given(st.one_of(stored_states, json_values))
def test_decode_state_gives_a_state_or_a_state_format_error(value: Any) -> None:
    try:
        state = decode_state("u", value)
    except StateFormatError as exc:
        assert "user 'u'" in str(exc)
        return
    assert state is None or isinstance(state, UserState)


@FAST
@given(
    st.lists(st.text(max_size=8), max_size=5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_a_state_round_trips_through_the_codec(history: list[str], scale: float) -> None:
    vector = np.full(3, scale, dtype=np.float32)
    state = UserState(history=history, weights=[1.0] * len(history), vector=vector)
    back = decode_state("u", encode_state(state, seen=1.0))
    assert back is not None and back.history == history
    assert back.vector is not None and np.array_equal(back.vector, vector)


@FAST
@given(
    key=st.one_of(st.none(), st.binary(max_size=5000), any_text),
    error=st.one_of(any_text, st.text(any_char, min_size=3000, max_size=4000)),
    raw=st.one_of(st.none(), st.binary(max_size=5000), any_text, st.just("\x00" * 20_000)),
)
def test_a_dead_letter_of_anything_is_bounded(key: Any, error: str, raw: Any) -> None:
    dead = letter("events", 0, 1, key, error, raw)
    encoded = dumps(dead)
    assert len(encoded) <= 6 * (KEY_LIMIT + ERROR_LIMIT + RAW_LIMIT) + 1000 < PRODUCER_LIMIT
    assert len(dead.error.encode()) <= ERROR_LIMIT + 3
    assert dead.key is None or len(dead.key.encode()) <= KEY_LIMIT + 3


def test_the_strategies_reach_accepted_records_too() -> None:
    """The properties above check accepted records only if some are drawn."""

    def accepted_event(raw: bytes | str) -> bool:
        try:
            event = decode_event(raw, default_event_id="d", limits=LIMITS)
        except InvalidRecord:
            return False
        return bool(event.text)

    def accepted_item(raw: bytes | str) -> bool:
        try:
            return bool(decode_item(raw, limits=LIMITS).attributes)
        except InvalidRecord:
            return False

    # find() stops at the first accepted example. Its default 100 tries missed once in a
    # fresh clone's unit run: about 0.4 % of event draws are accepted (4 of 1,000).
    search = settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck))
    assert accepted_event(find(raw_values(event_like()), accepted_event, settings=search))
    assert accepted_item(find(raw_values(item_like()), accepted_item, settings=search))
