"""The Kafka contract: strict decoding of inbound records and the JSON of outbound ones."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.schemas import (
    RAW_LIMIT,
    DeadLetter,
    Event,
    ForgetUser,
    InvalidRecord,
    ItemRecord,
    Recommendation,
    ScoredItem,
    decode_event,
    decode_events_record,
    decode_item,
    decode_item_key,
    dumps,
    recommendation_json,
    truncate_raw,
)

VALID_EVENT: dict[str, Any] = {"user_id": "u1", "item_id": "i1", "ts": 1700000000}
_DROP = object()  # a field value meaning "leave the field out"


def event_json(**changes: Any) -> str:
    record = {**VALID_EVENT, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not _DROP})


def rejected(raw: bytes | str | None) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode_event(raw, default_event_id="default-id")
    return str(info.value)


# --- events: accepted -------------------------------------------------------------


def test_minimal_event_gets_defaults() -> None:
    event = decode_event(event_json(), default_event_id="topic-0-42")
    assert event == Event(
        event_id="topic-0-42",
        user_id="u1",
        item_id="i1",
        type="interaction",
        ts=1700000000.0,
        scenario="default",
        weight=1.0,
        text=None,
        learn=True,
    )
    assert isinstance(event.ts, float)


def test_given_fields_win_over_defaults() -> None:
    raw = event_json(
        event_id="e9", type="click", scenario="movies", weight=2.5, text="hi", learn=False
    )
    event = decode_event(raw.encode("utf-8"), default_event_id="unused")
    assert (event.event_id, event.type, event.scenario, event.weight, event.text) == (
        "e9",
        "click",
        "movies",
        2.5,
        "hi",
    )
    assert event.learn is False


def test_explicit_null_event_id_is_defaulted() -> None:
    assert decode_event(event_json(event_id=None), default_event_id="d").event_id == "d"


def test_ids_are_stripped() -> None:
    event = decode_event(event_json(user_id="  u1 ", item_id="\ti1\n"), default_event_id="d")
    assert (event.user_id, event.item_id) == ("u1", "i1")


def test_unknown_fields_are_ignored() -> None:
    event = decode_event(event_json(extra={"nested": 1}, rating=5), default_event_id="d")
    assert "extra" not in event.model_dump()
    assert event.user_id == "u1"


def test_unicode_text_is_kept() -> None:
    event = decode_event(event_json(text="naïve café 🚀").encode("utf-8"), default_event_id="d")
    assert event.text == "naïve café 🚀"


# --- events: rejected -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (None, "null record"),
        ("not json", "not valid UTF-8 JSON"),
        ("", "not valid UTF-8 JSON"),
        (b'{"user_id": "\xff", "item_id": "i", "ts": 1}', "not valid UTF-8 JSON"),
        ("[1, 2]", "record: Input should be a valid dictionary"),
        ('"a string"', "record: Input should be a valid dictionary"),
        ("42", "record: Input should be a valid dictionary"),
    ],
)
def test_non_object_records_are_rejected(raw: bytes | str | None, needle: str) -> None:
    assert needle in rejected(raw)


@pytest.mark.parametrize("field", ["user_id", "item_id", "ts"])
def test_missing_required_field_is_named(field: str) -> None:
    assert rejected(event_json(**{field: _DROP})) == f"{field}: Field required"


def test_every_missing_field_is_reported() -> None:
    reason = rejected('{"item_id": "i"}')
    assert "user_id: Field required" in reason
    assert "ts: Field required" in reason


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user_id": 42}, "user_id"),
        ({"item_id": 7}, "item_id"),
        ({"ts": "1700000000"}, "ts"),
        ({"ts": True}, "ts"),
        ({"weight": "2"}, "weight"),
        ({"weight": True}, "weight"),
        ({"text": 5}, "text"),
        ({"learn": "no"}, "learn"),
        ({"learn": 0}, "learn"),
        ({"scenario": None}, "scenario"),
    ],
)
def test_wrong_types_are_rejected_strictly(changes: dict[str, Any], field: str) -> None:
    assert rejected(event_json(**changes)).startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["user_id", "item_id", "event_id", "type", "scenario"])
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_or_blank_ids_are_rejected(field: str, value: str) -> None:
    reason = rejected(event_json(**{field: value}))
    assert reason.startswith(f"{field}: String should have at least 1 character")


@pytest.mark.parametrize("weight", [0, 0.0, -1, -0.5])
def test_non_positive_weight_is_rejected(weight: float) -> None:
    assert rejected(event_json(weight=weight)) == f"weight must be > 0, got {float(weight)}"


@pytest.mark.parametrize(
    "raw",
    [
        # Python's json accepts these non-standard literals; the contract must not.
        '{"user_id": "u", "item_id": "i", "ts": NaN}',
        '{"user_id": "u", "item_id": "i", "ts": Infinity}',
        '{"user_id": "u", "item_id": "i", "ts": 1, "weight": NaN}',
        '{"user_id": "u", "item_id": "i", "ts": 1, "weight": Infinity}',
        '{"user_id": "u", "item_id": "i", "ts": -Infinity}',
        '{"user_id": "u", "item_id": "i", "ts": 1e400}',  # overflows to inf
    ],
)
def test_non_finite_numbers_are_rejected(raw: str) -> None:
    field = "weight" if '"weight"' in raw else "ts"
    assert rejected(raw) == f"{field}: must be a finite number"


# --- items ------------------------------------------------------------------------


def test_item_defaults_and_attributes() -> None:
    raw = {
        "item_id": "m1",
        "text": "Toy Story. Genres: Animation.",
        "attributes": {
            "title": "Toy Story",
            "year": 1995,
            "score": 8.3,
            "kids": True,
            "genres": ["Animation", 1, 2.5, False],
        },
        "unknown": "ignored",
    }
    item = decode_item(json.dumps(raw).encode("utf-8"))
    assert item == ItemRecord(
        item_id="m1",
        text="Toy Story. Genres: Animation.",
        scenario="default",
        attributes=raw["attributes"],
        ts=None,
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"item_id": "m1"}, "text"),
        ({"item_id": "m1", "text": ""}, "text"),
        ({"item_id": "m1", "text": "   "}, "text"),
        ({"item_id": "m1", "text": None}, "text"),
        ({"text": "t"}, "item_id"),
        ({"item_id": 1, "text": "t"}, "item_id"),
        ({"item_id": "m1", "text": "t", "scenario": ""}, "scenario"),
        ({"item_id": "m1", "text": "t", "attributes": {"nested": {"a": 1}}}, "attributes.nested"),
        ({"item_id": "m1", "text": "t", "attributes": {"x": None}}, "attributes.x"),
        ({"item_id": "m1", "text": "t", "attributes": {"x": [[1]]}}, "attributes.x"),
        ({"item_id": "m1", "text": "t", "attributes": [1]}, "attributes"),
        ({"item_id": "m1", "text": "t", "ts": "5"}, "ts"),
    ],
)
def test_invalid_items_are_rejected_naming_the_field(record: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_item(json.dumps(record))
    assert str(info.value).startswith(f"{field}")


@pytest.mark.parametrize("raw", [None, "{", b"\xff", "[]"])
def test_item_non_objects_are_rejected(raw: bytes | str | None) -> None:
    with pytest.raises(InvalidRecord):
        decode_item(raw)


# --- dead-letter text and outbound JSON -------------------------------------------


def test_truncate_raw_keeps_short_records_unchanged() -> None:
    assert truncate_raw(None) == ""
    assert truncate_raw("abc") == "abc"
    assert truncate_raw(b"x" * RAW_LIMIT) == "x" * RAW_LIMIT


def test_truncate_raw_cuts_at_limit_and_marks_it() -> None:
    assert truncate_raw(b"x" * (RAW_LIMIT + 1)) == "x" * RAW_LIMIT + "…"
    assert truncate_raw("abcdef", limit=4) == "abcd…"


def test_truncate_raw_survives_invalid_utf8() -> None:
    assert truncate_raw(b"ok\xff\xfe") == "ok\ufffd\ufffd"


def test_dumps_round_trips_a_recommendation() -> None:
    rec = Recommendation(
        user_id="u1",
        event_id="e1",
        scenario="movies",
        items=[ScoredItem(item_id="a", score=0.75), ScoredItem(item_id="ü", score=-0.25)],
        model_version=3,
        ts=1700000000.5,
        latency_ms=12.25,
    )
    raw = dumps(rec)
    assert isinstance(raw, bytes)
    assert Recommendation.model_validate_json(raw) == rec
    assert json.loads(raw)["items"] == [
        {"item_id": "a", "score": 0.75},
        {"item_id": "ü", "score": -0.25},
    ]


def test_dumps_writes_none_fields_as_null() -> None:
    letter = DeadLetter(topic="events", partition=1, offset=7, key=None, error="bad", raw="{")
    assert json.loads(dumps(letter))["key"] is None
    assert DeadLetter.model_validate_json(dumps(letter)) == letter


# --- the forget record and item tombstones ----------------------------------------


def test_a_forget_record_is_told_from_an_event_by_its_type() -> None:
    forget = decode_events_record(b'{"type": "forget", "user_id": " u1 "}', default_event_id="d")
    assert isinstance(forget, ForgetUser) and (forget.user_id, forget.event_id) == ("u1", "d")
    event = decode_events_record(event_json(type="click").encode(), default_event_id="d")
    assert isinstance(event, Event) and event.type == "click"
    with pytest.raises(InvalidRecord, match="ts must be epoch seconds"):
        decode_events_record(b'{"type": "forget", "user_id": "u", "ts": -5}', default_event_id="d")
    with pytest.raises(InvalidRecord, match="control character"):
        decode_events_record(b'{"type": "forget", "user_id": "u\\u0000"}', default_event_id="d")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "without a key"),
        (b"  ", "blank key"),
        (b"\xff\xfe", "not UTF-8"),
        (b"k" * 300, "item_id: 300 bytes"),
    ],
)
def test_an_item_tombstone_needs_a_usable_key(key: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        decode_item_key(key)
    assert decode_item_key(b" item-7 ") == "item-7"


@given(
    ids=st.tuples(st.text(), st.text(), st.text()),
    items=st.lists(st.tuples(st.text(), st.floats(allow_nan=False, allow_infinity=False))),
    version=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    times=st.tuples(st.floats(), st.floats()),
)
def test_recommendation_json_is_the_models_json(
    ids: tuple[str, str, str],
    items: list[tuple[str, float]],
    version: int,
    times: tuple[float, float],
) -> None:
    """The worker writes recommendations without their models: the bytes are those of
    the contract's model, for any text (quotes, escapes, non-ASCII) and number."""
    (user_id, event_id, scenario), (ts, latency_ms) = ids, times
    fields: dict[str, Any] = {
        "user_id": user_id,
        "event_id": event_id,
        "scenario": scenario,
        "model_version": version,
        "ts": ts,
        "latency_ms": latency_ms,
    }
    model = Recommendation(
        **fields, items=[ScoredItem(item_id=i, score=score) for i, score in items]
    )
    raw = recommendation_json(**fields, items=items)
    assert raw == dumps(model)  # a non-finite time too: null, as the model writes it
    if math.isfinite(ts) and math.isfinite(latency_ms):
        assert Recommendation.model_validate_json(raw) == model
