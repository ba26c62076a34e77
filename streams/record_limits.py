"""What an inbound record may hold, checked before and after its contract is validated.

Any bytes can arrive on `items` and `events`. These checks turn every way a record can
break a worker into `InvalidRecord` with a reason: too many bytes (checked before
parsing), JSON the parser refuses (including nesting too deep for it: a RecursionError,
and numbers of more digits than Python converts: a ValueError), nesting deeper than the
limit, a non-finite number, a lone surrogate (decodes, but can never be written back as
UTF-8), and, once the contract is validated, ids and scenarios too long or with control
characters, a weight out of range, a timestamp out of the window, attributes too many or
too big. Pure functions of the record and `LimitsConfig`; no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from streams.settings import LimitsConfig

# Cc: C0 controls (NUL included), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# How a surrogate gets into valid UTF-8 JSON: as an escape (pairs too: they are fine).
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
# Every digit as 0 and E as e: a number with an exponent shows as "0e", a run of 16 or
# more digits as sixteen 0s (substring searches, several times faster than a regex).
_NUMBER_SHAPE = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_RUN = b"0" * 16


class InvalidRecord(ValueError):
    """A record that does not satisfy the contract; the message is the reason."""


def _where(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "record"


def _size(raw: bytes | str) -> int:
    return len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))


def load_json(raw: bytes | str | None, limits: LimitsConfig) -> Any:
    """A raw record value -> its JSON, within ``limits`` (size, depth, finite numbers,
    encodable strings), or InvalidRecord with the reason."""
    if raw is None:
        raise InvalidRecord("empty value (null record)")
    size = _size(raw)
    if size > limits.record_bytes:
        limit = limits.record_bytes
        raise InvalidRecord(f"record is {size} bytes, over the limit of {limit} bytes")
    non_finite: list[str] = []  # numbers read as inf or nan (parse hooks)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            non_finite.append(text)
        return value

    try:
        data = json.loads(raw, parse_float=number, parse_constant=number)
    except RecursionError as exc:
        raise InvalidRecord(f"JSON nested too deeply to parse (RecursionError: {exc})") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InvalidRecord(f"not valid UTF-8 JSON: {type(exc).__name__}: {exc}") from exc
    if non_finite or not _plainly_within(raw, limits.json_depth):
        check_tree(data, limits.json_depth)  # finds what is wrong, and where
    return data


def plain_json(raw: bytes | str | None, limits: LimitsConfig) -> bytes | None:
    """``raw`` when its text alone shows that `load_json` would parse it to the same values
    and find nothing beyond ``limits`` that a contract's validation would not see: bytes
    within the size limit (a str can hold a raw lone surrogate), no deeper than the depth
    limit, no surrogate escape, and no number a JSON parser other than Python's could read
    differently or that could be non-finite (NaN, Infinity, an exponent, a run of 16 or
    more digits). The usual record can then skip `load_json` and go to a validator's own
    JSON parser (pydantic's), whose JSON grammar is as strict; None otherwise."""
    if not isinstance(raw, bytes) or len(raw) > limits.record_bytes:
        return None
    if not _plainly_within(raw, limits.json_depth) or b"NaN" in raw or b"Infinity" in raw:
        return None
    shape = raw.translate(_NUMBER_SHAPE)  # text that merely looks so takes the other way too
    return None if b"0e" in shape or _LONG_RUN in shape else raw


def _plainly_within(raw: bytes | str, max_depth: int) -> bool:
    """Whether the text alone shows what `check_tree` checks (a fast path for the usual
    record): no more containers in all than ``max_depth`` levels, and no surrogate
    escape. Non-finite numbers are caught while parsing."""
    if not isinstance(raw, bytes):  # a str can hold a raw lone surrogate
        return False
    containers = raw.count(b"{") + raw.count(b"[")  # braces inside strings count too
    return containers <= max_depth and _ESCAPED_SURROGATE.search(raw) is None


def check_tree(data: Any, max_depth: int) -> None:
    """Walk parsed JSON without recursion: InvalidRecord at the first container nested
    deeper than ``max_depth`` (the top is 1), non-finite number or string (key or value)
    holding a lone surrogate."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(data, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise InvalidRecord(f"{_where(path)}: nested deeper than {max_depth} levels")
            if isinstance(value, dict):
                for key, child in value.items():
                    if _SURROGATE.search(key):
                        raise InvalidRecord(f"{_where((*path, key[:40]))}: lone surrogate in a key")
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, n)) for n, child in enumerate(value))
        elif isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                code = f"U+{ord(found.group()):04X}"
                raise InvalidRecord(f"{_where(path)}: lone surrogate {code} (not encodable)")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRecord(f"{_where(path)}: must be a finite number")


def check_id(field: str, value: str | None, limit: int) -> None:
    """An id (or a scenario): at most ``limit`` UTF-8 bytes, no control characters."""
    if value is None:
        return
    if value.isascii() and value.isprintable() and len(value) <= limit:
        return  # the usual id: one byte a character, no control character (none is printable)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidRecord(f"{field}: {size} bytes, over the limit of {limit}")
    found = _CONTROL.search(value)
    if found:
        code = f"U+{ord(found.group()):04X}"
        raise InvalidRecord(f"{field}: control character {code} at {found.start()}")


def cut_text(text: str | None, limits: LimitsConfig) -> str | None:
    """Text beyond ``limits.text_chars`` is cut (see the README's "Limits")."""
    if text is None or len(text) <= limits.text_chars:
        return text
    return text[: limits.text_chars]


def check_weight(weight: float, limits: LimitsConfig) -> None:
    if not math.isfinite(weight):
        raise InvalidRecord("ts and weight must be finite numbers")
    if weight <= 0:
        raise InvalidRecord(f"weight must be > 0, got {weight}")
    if weight > limits.weight_max:
        raise InvalidRecord(f"weight must be <= {limits.weight_max}, got {weight}")


def check_ts(ts: float | None, limits: LimitsConfig) -> None:
    if ts is None:
        return
    if not math.isfinite(ts):
        raise InvalidRecord("ts and weight must be finite numbers")
    if not limits.ts_min <= ts <= limits.ts_max:
        raise InvalidRecord(
            f"ts must be epoch seconds in [{limits.ts_min:.0f}, {limits.ts_max:.0f}], got {ts}"
        )


def check_attributes(attributes: Mapping[str, Any] | None, limits: LimitsConfig) -> None:
    """At most ``limits.attributes`` of them, ``limits.attributes_bytes`` as JSON."""
    if attributes is None:
        return
    if len(attributes) > limits.attributes:
        raise InvalidRecord(
            f"attributes: {len(attributes)} attributes, over the limit of {limits.attributes}"
        )
    size = len(json.dumps(attributes, ensure_ascii=False).encode("utf-8"))
    if size > limits.attributes_bytes:
        raise InvalidRecord(
            f"attributes: {size} bytes of JSON, over the limit of {limits.attributes_bytes}"
        )


def pre_check_attributes(data: Any, limits: LimitsConfig) -> None:
    """The attribute count, before the contract is validated (so a record with thousands
    of bad attributes is not validated one by one)."""
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if isinstance(attributes, dict) and len(attributes) > limits.attributes:
        raise InvalidRecord(
            f"attributes: {len(attributes)} attributes, over the limit of {limits.attributes}"
        )
