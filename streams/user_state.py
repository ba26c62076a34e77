"""The users table's values: `UserState`s written by `encode_state` as JSON bytes in the
current ``STATE_FORMAT`` (the table and its changelog hold them as they are), read back
by `decode_state`, which upgrades older formats and rejects unknown ones with
`StateFormatError`."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json, to_json

from streams.schemas import validation_reason
from workers.model import Vector
from workers.recommend_io import UserState

STATE_FORMAT: Literal[3] = 3


class StateFormatError(ValueError):
    """A stored user state this worker cannot read (unknown format or malformed)."""


class _StoredStateV1(BaseModel):
    """Format 1: written before formats were numbered (no "format" key, no weights)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    history: list[str]
    pending: list[str]
    vector: str | None
    events: int
    scenario: str
    version: int


class _WeightedState(_StoredStateV1):
    """Since format 2: every history item keeps its event's weight, and the user's
    recently applied event ids are kept (an event re-processed after a crash is applied
    once)."""

    weights: list[float]
    recent_events: list[str]


class _StoredStateV2(_WeightedState):
    format: Literal[2]


class _StoredState(_WeightedState):
    """Format 3: when the state was last written (``seen``, Unix seconds of processing
    time), so an idle user's state can expire (`streams.expiry`)."""

    format: Literal[3]
    seen: float


def _encode_vector(vector: Vector | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _decode_vector(text: str | None) -> Vector | None:
    if text is None:
        return None
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)


def encode_state(state: UserState, *, seen: float) -> bytes:
    """UserState -> the users table's value: its JSON in ``STATE_FORMAT`` (UTF-8), which
    the table stores and sends to its changelog as it is; ``seen`` is the processing time
    of the write (Unix seconds). Written from the fields, without a model: the worker's
    own values, the same JSON a format-3 model dumps (a property test checks it)."""
    return to_json(
        {
            "history": state.history,
            "pending": state.pending,
            "vector": _encode_vector(state.vector),
            "events": state.events,
            "scenario": state.scenario,
            "version": state.version,
            "weights": [float(w) for w in state.weights],
            "recent_events": state.recent_events,
            "format": STATE_FORMAT,
            "seen": seen,
        }
    )


def seen_at(value: bytes | Mapping[str, Any]) -> float | None:
    """When a stored state was last written (None: a format before 3 did not say, or the
    value is not a JSON object)."""
    if isinstance(value, bytes | bytearray):
        try:
            value = from_json(value)
        except ValueError:
            return None
        if not isinstance(value, Mapping):
            return None
    seen = value.get("seen") if value.get("format") == STATE_FORMAT else None
    return float(seen) if isinstance(seen, int | float) else None


def decode_state(user_id: str, value: bytes | Mapping[str, Any] | None) -> UserState | None:
    """The users table's value (its JSON bytes, or that JSON parsed) -> UserState (None:
    no state yet, a new user).

    A value in the current format is validated straight from its bytes. Format 1 is
    upgraded (each history item weighs 1.0, as it did when folded, and no event id is
    remembered), format 2 read as it is (``seen`` is not part of the state); an unknown
    format, a value missing a field or bytes that are not JSON raise `StateFormatError`:
    a state is never silently replaced by defaults.
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        current = _current_state(value)
        if current is not None:
            return _state_of(user_id, current)
        try:  # another format, or broken: the parsed way says which
            value = json.loads(value)
        except ValueError as exc:
            reason = f"user {user_id!r}: stored state is not JSON: {exc}"
            raise StateFormatError(reason) from exc
    if not isinstance(value, Mapping):
        raise StateFormatError(f"user {user_id!r}: stored state is not an object")
    fmt = value.get("format", 1)
    try:
        if fmt == 1:
            old = _StoredStateV1.model_validate({k: v for k, v in value.items() if k != "format"})
            weights = [1.0] * len(old.history)  # how format-1 states were folded
            stored: _WeightedState = _StoredStateV2(
                **old.model_dump(), format=2, weights=weights, recent_events=[]
            )
        elif fmt == 2:
            stored = _StoredStateV2.model_validate(value)
        elif fmt == STATE_FORMAT:
            stored = _StoredState.model_validate(value)
        else:
            raise StateFormatError(
                f"user {user_id!r}: stored state has format {fmt!r}; this worker reads "
                f"formats 1..{STATE_FORMAT} (a newer worker wrote it?)"
            )
    except ValidationError as exc:
        raise StateFormatError(
            f"user {user_id!r}: stored state format {fmt}: {validation_reason(exc)}"
        ) from exc
    return _state_of(user_id, stored, fmt)


def _current_state(value: bytes | bytearray) -> _StoredState | None:
    """A stored value in the current format, validated from its bytes; None: anything
    else, or a number the parsed way reads otherwise (``seen`` beyond a float: Python
    refuses such an int where pydantic's parser reads infinity)."""
    try:
        current = _StoredState.model_validate_json(value)
    except ValidationError:
        return None
    return current if math.isfinite(current.seen) else None


def _state_of(user_id: str, stored: _WeightedState, fmt: Any = STATE_FORMAT) -> UserState:
    """A validated stored state -> UserState, or StateFormatError (a vector that is not
    base64, weights or pending items that do not match the history)."""
    try:
        return UserState(
            history=stored.history,
            weights=stored.weights,
            pending=stored.pending,
            recent_events=stored.recent_events,
            vector=_decode_vector(stored.vector),
            events=stored.events,
            scenario=stored.scenario,
            version=stored.version,
        )
    except ValueError as exc:
        raise StateFormatError(f"user {user_id!r}: stored state format {fmt}: {exc}") from exc
