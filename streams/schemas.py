"""Every message shape of streamrec's Kafka contract, in one typed module.

Inbound records (`ItemRecord`, `Event`) are validated strictly: a record that is not
JSON, misses a field, has a wrong type or an empty id raises `InvalidRecord` with a
human-readable reason, and the caller routes it to the dead-letter topic.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
AttributeValue = str | int | float | bool | list[str | int | float | bool]

RAW_LIMIT = 2048  # bytes of the original record kept in a dead letter


class InvalidRecord(ValueError):
    """A record that does not satisfy the contract; the message is the reason."""


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


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _load_json(raw: bytes | str | None) -> Any:
    if raw is None:
        raise InvalidRecord("empty value (null record)")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecord(f"not valid UTF-8 JSON: {exc}") from exc


def decode_item(raw: bytes | str | None) -> ItemRecord:
    """Raw `items` value -> ItemRecord, or InvalidRecord with the reason."""
    data = _load_json(raw)
    try:
        item = ItemRecord.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc)) from exc
    if item.ts is not None and not math.isfinite(item.ts):
        raise InvalidRecord("ts must be a finite number")
    return item


def decode_event(raw: bytes | str | None, *, default_event_id: str) -> Event:
    """Raw `events` value -> Event (``event_id`` defaulted), or InvalidRecord."""
    data = _load_json(raw)
    try:
        event = Event.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc)) from exc
    if not (math.isfinite(event.ts) and math.isfinite(event.weight)):
        raise InvalidRecord("ts and weight must be finite numbers")
    if event.weight <= 0:
        raise InvalidRecord(f"weight must be > 0, got {event.weight}")
    if event.event_id is None:
        event = event.model_copy(update={"event_id": default_event_id})
    return event


def truncate_raw(raw: bytes | str | None, limit: int = RAW_LIMIT) -> str:
    """The original record as text for a dead letter, cut to ``limit`` bytes."""
    if raw is None:
        return ""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    text = data[:limit].decode("utf-8", "replace")
    return text + ("…" if len(data) > limit else "")


def dumps(record: BaseModel) -> bytes:
    """Contract JSON (UTF-8) of a record."""
    return record.model_dump_json(exclude_none=False).encode("utf-8")
