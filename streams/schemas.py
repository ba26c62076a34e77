"""Every message shape of streamrec's Kafka topics, in one typed module.

Inbound records (`ItemRecord`, `Event`) are validated strictly: a record that is not
JSON, misses a field, has a wrong type or an empty id, or is beyond the worker's
`LimitsConfig` (size, nesting, id length, weight range, timestamp window ...; see
`streams.record_limits`), raises `InvalidRecord` with a human-readable reason, and the
caller routes it to the dead-letter topic. A text beyond its limit is cut instead.

The users table's values are `streams.user_state`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import to_json

from streams.record_limits import InvalidRecord as InvalidRecord  # the decoders raise it
from streams.record_limits import (
    check_attributes,
    check_id,
    check_ts,
    check_weight,
    cut_text,
    load_json,
    plain_json,
    pre_check_attributes,
)
from streams.settings import LimitsConfig

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
AttributeValue = str | int | float | bool | list[str | int | float | bool]

RAW_LIMIT = 2048  # bytes of the original record kept in a dead letter
KEY_LIMIT = 1024  # bytes of the original key kept in a dead letter (and as its key)
ERROR_LIMIT = 2048  # bytes of the reason kept in a dead letter
DEFAULT_LIMITS = LimitsConfig()


class _Contract(BaseModel):
    # Strict: "42" is not a number and 42 is not a string. Unknown fields are ignored
    # so producers can add fields without breaking older workers.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ItemRecord(_Contract):
    """`items` topic, key ``item_id``. A later record for the same id replaces it."""

    item_id: NonEmpty
    text: NonEmpty
    scenario: NonEmpty = "default"
    attributes: dict[str, AttributeValue] | None = None
    ts: float | None = None


class Event(_Contract):
    """`events` topic, key ``user_id``."""

    event_id: NonEmpty | None = None
    user_id: NonEmpty
    item_id: NonEmpty
    type: NonEmpty = "interaction"
    ts: float
    scenario: NonEmpty = "default"
    weight: float = 1.0
    text: str | None = None
    # False: the event moves its user and is served, but is not a training sample
    # (evaluation probes, traffic the model should not learn from).
    learn: bool = True


#: The ``type`` of an `events` record that forgets its user (`ForgetUser`).
FORGET = "forget"


class ForgetUser(_Contract):
    """`events` topic, key ``user_id``, ``type`` "forget": remove everything kept of the
    user (their state and pending items, their training samples). It travels the user's
    path (served in place or re-keyed by user, like their events with the same key), so
    it comes after their earlier events."""

    type: Literal["forget"]
    user_id: NonEmpty
    event_id: NonEmpty | None = None
    ts: float | None = None


class ScoredItem(_Contract):
    item_id: str
    score: float


class Recommendation(_Contract):
    """`recommendations` topic, key ``user_id``: one per input event."""

    user_id: str
    event_id: str
    scenario: str
    items: list[ScoredItem]
    model_version: int
    ts: float
    latency_ms: float


def recommendation_json(
    *,
    user_id: str,
    event_id: str,
    scenario: str,
    items: Sequence[tuple[str, float]],
    model_version: int,
    ts: float,
    latency_ms: float,
) -> bytes:
    """The contract JSON of a `Recommendation` of these fields, written without building
    its models: the same bytes as ``dumps(Recommendation(...))``, in a third of the time
    (eleven models per event were 8 % of the worker's time in a firehose profile,
    BENCHMARKS.md session 30). For values the worker computed itself: nothing is
    validated; a value of a type JSON cannot hold raises."""
    return to_json(
        {
            "user_id": user_id,
            "event_id": event_id,
            "scenario": scenario,
            "items": [{"item_id": item_id, "score": score} for item_id, score in items],
            "model_version": model_version,
            "ts": ts,
            "latency_ms": latency_ms,
        },
        inf_nan_mode="null",  # as the model's JSON writes a non-finite float
    )


class DeadLetter(_Contract):
    """`dead-letters` topic: a record that could not be processed, and why."""

    topic: str
    partition: int
    offset: int
    key: str | None
    error: str
    raw: str


class SourceRef(_Contract):
    """Where an event came from (kept so a late failure can still be dead-lettered)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp: float  # broker/producer timestamp of the original record, epoch seconds


class KeyedEvent(_Contract):
    """Internal `<app>-events-by-user` topic: a validated event, repartitioned by user."""

    event: Event
    source: SourceRef


class KeyedForget(_Contract):
    """Internal `<app>-events-by-user` topic: a validated `ForgetUser`, keyed by user."""

    forget: ForgetUser
    source: SourceRef


_REASONS = 8  # validation errors named in a reason (a record may have thousands)


def validation_reason(exc: ValidationError) -> str:
    """A validation error as a bounded, human-readable reason (the first few errors)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for err in errors[:_REASONS]:
        where = ".".join(str(p)[:64] for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg'][:200]}")
    more = len(errors) - _REASONS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_item(raw: bytes | str | None, *, limits: LimitsConfig = DEFAULT_LIMITS) -> ItemRecord:
    """Raw `items` value -> ItemRecord within ``limits`` (text cut to its limit), or
    InvalidRecord with the reason."""
    data = load_json(raw, limits)
    pre_check_attributes(data, limits)
    try:
        item = ItemRecord.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(validation_reason(exc)) from exc
    check_id("item_id", item.item_id, limits.id_bytes)
    check_id("scenario", item.scenario, limits.scenario_bytes)
    check_ts(item.ts, limits)
    check_attributes(item.attributes, limits)
    text = cut_text(item.text, limits)
    return item if text == item.text else item.model_copy(update={"text": text})


def decode_event(
    raw: bytes | str | None, *, default_event_id: str, limits: LimitsConfig = DEFAULT_LIMITS
) -> Event:
    """Raw `events` value -> Event within ``limits`` (``event_id`` defaulted, text cut to
    its limit), or InvalidRecord with the reason."""
    event = _plain_event(raw, limits)
    if event is not None:
        return _checked(event, default_event_id, limits)
    return _event(load_json(raw, limits), default_event_id, limits)


def decode_events_record(
    raw: bytes | str | None, *, default_event_id: str, limits: LimitsConfig = DEFAULT_LIMITS
) -> Event | ForgetUser:
    """Raw `events` value -> an Event, or a ForgetUser when its ``type`` is "forget"
    (``event_id`` defaulted), or InvalidRecord with the reason."""
    event = _plain_event(raw, limits)
    if event is not None:
        return _checked(event, default_event_id, limits)
    data = load_json(raw, limits)
    return events_record_of(data, default_event_id=default_event_id, limits=limits)


def events_record_of(
    data: Any, *, default_event_id: str, limits: LimitsConfig = DEFAULT_LIMITS
) -> Event | ForgetUser:
    """An `events` record's parsed JSON (`load_json`) -> what `decode_events_record` gives
    for it: the way of every record its shortcut does not take."""
    if not (isinstance(data, dict) and data.get("type") == FORGET):
        return _event(data, default_event_id, limits)
    try:
        forget = ForgetUser.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(validation_reason(exc)) from exc
    check_id("user_id", forget.user_id, limits.id_bytes)
    check_id("event_id", forget.event_id, limits.id_bytes)
    check_ts(forget.ts, limits)
    if forget.event_id is None:
        return forget.model_copy(update={"event_id": default_event_id})
    return forget


def decode_item_key(key: bytes | str | None, *, limits: LimitsConfig = DEFAULT_LIMITS) -> str:
    """The key of an `items` tombstone (a null value) -> the id of the item to delete,
    or InvalidRecord with the reason."""
    if key is None:
        raise InvalidRecord("empty value (null record) without a key: no item to delete")
    try:
        item_id = key.decode("utf-8") if isinstance(key, bytes) else key
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"item tombstone key is not UTF-8: {exc}") from exc
    item_id = item_id.strip()
    if not item_id:
        raise InvalidRecord("item tombstone with a blank key: no item to delete")
    check_id("item_id", item_id, limits.id_bytes)
    return item_id


def _plain_event(raw: bytes | str | None, limits: LimitsConfig) -> Event | None:
    """The usual `events` record's way: an Event validated straight from its bytes by
    pydantic's JSON parser, when `plain_json` says that gives what the other way would
    (the decode in 60-70 % of the time; BENCHMARKS.md, session 31). None: the record
    takes the other way (anything unusual, anything invalid, a forget), which gives its
    reason."""
    plain = plain_json(raw, limits)
    if plain is None:
        return None
    try:
        event = Event.model_validate_json(plain)
    except ValidationError:
        return None
    return None if event.type == FORGET else event


def _event(data: Any, default_event_id: str, limits: LimitsConfig) -> Event:
    try:
        event = Event.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(validation_reason(exc)) from exc
    return _checked(event, default_event_id, limits)


def _checked(event: Event, default_event_id: str, limits: LimitsConfig) -> Event:
    """A validated event within ``limits`` (``event_id`` defaulted, text cut), or
    InvalidRecord with the reason."""
    for field in ("event_id", "user_id", "item_id", "type"):
        check_id(field, getattr(event, field), limits.id_bytes)
    check_id("scenario", event.scenario, limits.scenario_bytes)
    check_ts(event.ts, limits)
    check_weight(event.weight, limits)
    update: dict[str, Any] = {}
    if event.event_id is None:
        update["event_id"] = default_event_id
    text = cut_text(event.text, limits)
    if text != event.text:
        update["text"] = text
    return event.model_copy(update=update) if update else event


def truncate_raw(raw: bytes | str | None, limit: int = RAW_LIMIT) -> str:
    """Bytes or text as text, cut to ``limit`` UTF-8 bytes ("…" marks a cut)."""
    if raw is None:
        return ""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    # Text is cut between characters; bytes keep their invalid sequences visible.
    text = data[:limit].decode("utf-8", "ignore" if isinstance(raw, str) else "replace")
    return text + ("…" if len(data) > limit else "")


def key_text(key: bytes | str | None) -> str | None:
    """A Kafka key as text (undecodable bytes replaced), cut to ``KEY_LIMIT`` bytes."""
    return None if key is None else truncate_raw(key, KEY_LIMIT)


def dumps(record: BaseModel) -> bytes:
    """Contract JSON (UTF-8) of a record."""
    return record.model_dump_json(exclude_none=False).encode("utf-8")
