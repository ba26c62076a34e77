"""Hostile records against the decoders: each is rejected with a reason (`InvalidRecord`)
or accepted within the limits (`LimitsConfig`); nothing else ever leaves a decoder.

The cases are the ones issue 10 lists: deep nesting, a 5,000-digit number, a lone
surrogate, ids and scenarios of 100,000 characters, NUL in ids, a 900,000-character
text, weights of 1e39 and 1e308, timestamps of -1e12 and 1e300, an item whose bad
attributes gave a 53 MB reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from streams.schemas import (
    ERROR_LIMIT,
    InvalidRecord,
    KeyedEvent,
    SourceRef,
    decode_event,
    decode_item,
    dumps,
)
from streams.settings import LimitsConfig

LIMITS = LimitsConfig()
EVENT: dict[str, Any] = {"user_id": "u1", "item_id": "i1", "ts": 1_700_000_000}
ITEM: dict[str, Any] = {"item_id": "m1", "text": "a film"}


def _reason(decode: Callable[[str | bytes], object], raw: str | bytes) -> str:
    """The reason ``raw`` is refused; the same as text and as UTF-8 bytes (what Kafka
    hands a worker; bytes take a fast path past the tree walk when they plainly can)."""
    forms = [raw]
    if isinstance(raw, str):
        encoded = raw.encode("utf-8", "replace")
        if encoded.decode("utf-8") == raw:  # else a raw lone surrogate: only a str holds it
            forms.append(encoded)
    reasons = []
    for form in forms:
        with pytest.raises(InvalidRecord) as info:
            decode(form)
        reasons.append(str(info.value))
    assert len(set(reasons)) == 1, reasons
    return reasons[0]


def event_reason(raw: str | bytes, limits: LimitsConfig = LIMITS) -> str:
    return _reason(lambda r: decode_event(r, default_event_id="d", limits=limits), raw)


def item_reason(raw: str | bytes, limits: LimitsConfig = LIMITS) -> str:
    return _reason(lambda r: decode_item(r, limits=limits), raw)


def with_event(**changes: Any) -> str:
    return json.dumps({**EVENT, **changes}, ensure_ascii=False)


def with_item(**changes: Any) -> str:
    return json.dumps({**ITEM, **changes}, ensure_ascii=False)


def raw_event(field: str, value: str) -> str:
    """An event with ``field`` set to the JSON text ``value``, as it is."""
    return '{"user_id": "u", "item_id": "i", "ts": 1, "' + field + '": ' + value + "}"


def raw_item(field: str, value: str) -> str:
    return '{"item_id": "i", "text": "t", "' + field + '": ' + value + "}"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- the JSON itself ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [LIMITS.json_depth + 1, 5_000, 200_000])
@pytest.mark.parametrize("where", ["extra", "text", "attributes"])
def test_deep_nesting_is_rejected_not_a_recursion_error(depth: int, where: str) -> None:
    assert "nested" in event_reason(raw_event(where, nested(depth)))
    assert "nested" in item_reason(raw_item(where, nested(depth)))


def test_nesting_within_the_limit_in_an_unknown_field_is_ignored() -> None:
    raw = raw_event("extra", nested(LIMITS.json_depth - 1))
    assert decode_event(raw, default_event_id="d", limits=LIMITS).user_id == "u"


@pytest.mark.parametrize("field", ["ts", "weight", "extra"])
def test_a_5000_digit_number_is_rejected_with_the_exception_type(field: str) -> None:
    reason = event_reason(raw_event(field, "9" * 5000))
    assert reason.startswith("not valid UTF-8 JSON: ValueError")


@pytest.mark.parametrize("field", ["ts", "weight"])
def test_a_4000_digit_number_is_not_a_finite_float(field: str) -> None:
    assert event_reason(raw_event(field, "9" * 4000)).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", '"a \\ud800 b"'),
        ("user_id", '"\\udfff"'),
        ("scenario", '"s\\udc80"'),
        ("extra", '{"\\ud800": 1}'),
    ],
)
def test_a_lone_surrogate_is_rejected_where_it_is(field: str, value: str) -> None:
    reason = event_reason(raw_event(field, value))
    assert "surrogate" in reason and reason.startswith(field)


def test_a_surrogate_pair_escape_is_a_valid_character() -> None:
    raw = '{"user_id": "u", "item_id": "i", "ts": 1, "text": "\\ud83d\\ude80"}'
    event = decode_event(raw, default_event_id="d", limits=LIMITS)
    assert event.text == "🚀"


def test_an_accepted_event_always_re_encodes() -> None:
    raw = with_event(text="naïve \u2028 café 🚀", user_id="ü")
    event = decode_event(raw, default_event_id="d", limits=LIMITS)
    source = SourceRef(topic="events", partition=0, offset=1, key=None, timestamp=1.0)
    keyed = KeyedEvent(event=event, source=source)
    assert KeyedEvent.model_validate_json(dumps(keyed)) == keyed


def test_a_record_over_the_size_limit_is_rejected_before_parsing() -> None:
    small = LimitsConfig(record_bytes=1000)
    reason = event_reason(with_event(text="x" * 1000), small)
    assert reason.startswith("record is 1") and "over the limit of 1000 bytes" in reason
    assert "over the limit" in item_reason(with_item(text="y" * 2000), small)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_anywhere_are_rejected(literal: str) -> None:
    assert event_reason(raw_event("extra", f"[{literal}]")) == "extra.0: must be a finite number"


# --- ids, scenario, text -----------------------------------------------------------


@pytest.mark.parametrize("field", ["user_id", "item_id", "event_id", "type"])
def test_ids_longer_than_the_limit_are_rejected(field: str) -> None:
    reason = event_reason(with_event(**{field: "u" * 100_000}))
    assert reason == f"{field}: 100000 bytes, over the limit of {LIMITS.id_bytes}"
    assert decode_event(
        with_event(**{field: "u" * LIMITS.id_bytes}), default_event_id="d", limits=LIMITS
    )


def test_the_id_limit_counts_utf8_bytes() -> None:
    at_limit = "é" * (LIMITS.id_bytes // 2)
    assert decode_event(with_event(user_id=at_limit), default_event_id="d", limits=LIMITS)
    reason = event_reason(with_event(user_id=at_limit + "é"))
    assert reason == f"user_id: {LIMITS.id_bytes + 2} bytes, over the limit of {LIMITS.id_bytes}"


def test_a_long_scenario_is_rejected_in_events_and_items() -> None:
    long = "s" * 200_000
    expected = f"scenario: 200000 bytes, over the limit of {LIMITS.scenario_bytes}"
    assert event_reason(with_event(scenario=long)) == expected
    assert item_reason(with_item(scenario=long)) == expected


def test_a_long_item_id_is_rejected() -> None:
    assert item_reason(with_item(item_id="i" * 100_000)).startswith("item_id: 100000 bytes")


@pytest.mark.parametrize("bad", ["u\x00", "a\x00b", "\x07", "x\x7fy", "x\x85y", "a\nb"])
@pytest.mark.parametrize("field", ["user_id", "item_id", "scenario", "event_id"])
def test_control_characters_in_ids_are_rejected(field: str, bad: str) -> None:
    assert event_reason(with_event(**{field: bad})).startswith(f"{field}: control character")


def test_control_characters_in_item_ids_are_rejected() -> None:
    assert item_reason(with_item(item_id="m\x001")).startswith("item_id: control character")


@pytest.mark.parametrize("char", ["t", "é", "🚀"])
def test_long_event_text_is_truncated_to_the_limit(char: str) -> None:
    text = char * (900_000 // len(char.encode()))  # a 900 kB text
    event = decode_event(with_event(text=text), default_event_id="d", limits=LIMITS)
    assert event.text == char * LIMITS.text_chars


def test_long_item_text_is_truncated_to_the_limit() -> None:
    item = decode_item(with_item(text="w" * 900_000), limits=LIMITS)
    assert item.text == "w" * LIMITS.text_chars


def test_text_may_hold_newlines_and_tabs() -> None:
    event = decode_event(with_event(text="a\nb\tc"), default_event_id="d", limits=LIMITS)
    assert event.text == "a\nb\tc"


# --- weight and ts -----------------------------------------------------------------


@pytest.mark.parametrize("weight", [1e39, 1e308, LIMITS.weight_max * 1.001])
def test_weights_over_the_maximum_are_rejected(weight: float) -> None:
    reason = event_reason(with_event(weight=weight))
    assert reason == f"weight must be <= {LIMITS.weight_max}, got {weight}"


def test_the_maximum_weight_is_accepted() -> None:
    event = decode_event(with_event(weight=LIMITS.weight_max), default_event_id="d", limits=LIMITS)
    assert event.weight == LIMITS.weight_max


@pytest.mark.parametrize("ts", [-1e12, 1e300, -1.0, 1.7e12, LIMITS.ts_max + 1])
def test_timestamps_outside_the_window_are_rejected(ts: float) -> None:
    reason = event_reason(with_event(ts=ts))
    assert reason.startswith("ts must be epoch seconds in [")
    assert item_reason(with_item(ts=ts)).startswith("ts must be epoch seconds in [")


@pytest.mark.parametrize("ts", [0, 1.0, 889_000_000, 1_700_000_000.5])
def test_timestamps_inside_the_window_are_accepted(ts: float) -> None:
    assert decode_event(with_event(ts=ts), default_event_id="d", limits=LIMITS).ts == ts


# --- attributes --------------------------------------------------------------------


def test_too_many_attributes_are_rejected() -> None:
    attrs = {f"k{n}": n for n in range(LIMITS.attributes + 1)}
    reason = item_reason(with_item(attributes=attrs))
    assert reason == f"attributes: {len(attrs)} attributes, over the limit of {LIMITS.attributes}"


def test_attributes_over_the_size_limit_are_rejected() -> None:
    attrs = {"blurb": "z" * LIMITS.attributes_bytes}
    assert item_reason(with_item(attributes=attrs)).startswith("attributes: ")
    assert "over the limit of" in item_reason(with_item(attributes=attrs))


def test_a_600_kb_item_with_bad_attributes_gets_a_bounded_reason() -> None:
    attrs = {f"k{n}": [{"bad": 1}] * 3 for n in range(20_000)}
    raw = with_item(attributes=attrs)
    assert len(raw) > 600_000
    reason = item_reason(raw)
    assert len(reason.encode()) <= ERROR_LIMIT


def test_many_bad_fields_give_a_bounded_reason() -> None:
    record = {"item_id": "m", "text": "t", "attributes": {f"k{n}": None for n in range(60)}}
    reason = item_reason(json.dumps(record))
    assert reason.startswith("attributes.k0.str: Input should be a valid string")
    assert reason.endswith(" more") and len(reason.encode()) <= ERROR_LIMIT


# --- what the limits bound downstream ----------------------------------------------


def test_the_largest_user_state_the_limits_allow_fits_a_changelog_record() -> None:
    """A user's state holds up to HISTORY_SIZE item ids (some pending too) and
    DEDUP_WINDOW event ids: with every id at its limit, in 4-byte characters that JSON
    may escape to 12 bytes each, it must still fit the producer's 1 MB limit."""
    import numpy as np

    from streams.user_state import encode_state
    from workers.config import RecommendConfig
    from workers.recommend_io import UserState

    config = RecommendConfig()
    longest = "🚀" * (LIMITS.id_bytes // 4)
    assert decode_event(
        with_event(user_id=longest, item_id=longest, event_id=longest),
        default_event_id="d",
        limits=LIMITS,
    )
    history = [f"{n:03d}{longest}"[: len(longest)] for n in range(config.history_size)]
    state = UserState(
        history=history,
        weights=[LIMITS.weight_max] * len(history),
        pending=list(history),
        recent_events=[f"{n:03d}{longest}"[: len(longest)] for n in range(config.dedup_window)],
        vector=np.ones(1024, dtype=np.float32),
        scenario="s" * LIMITS.scenario_bytes,
    )
    stored = encode_state(state, seen=1.0)  # what the table writes
    assert len(stored) < 1_048_576, len(stored)
    for ascii_only in (True, False):  # and JSON that escapes every character
        size = len(json.dumps(json.loads(stored), ensure_ascii=ascii_only).encode("utf-8"))
        assert size < 1_048_576, size
