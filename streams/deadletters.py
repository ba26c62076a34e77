"""Routing of records that cannot be processed to the dead-letter topic."""

from __future__ import annotations

import logging
from typing import Any

from streams.schemas import DeadLetter, SourceRef, dumps, truncate_raw

log = logging.getLogger(__name__)


def _key_text(key: bytes | str | None) -> str | None:
    if key is None:
        return None
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)


def from_message(message: Any, error: str) -> DeadLetter:
    """A dead letter for a raw Kafka message (faust `Message`)."""
    return DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=_key_text(message.key),
        error=error,
        raw=truncate_raw(message.value),
    )


def from_source(source: SourceRef, error: str, raw: bytes | str | None) -> DeadLetter:
    """A dead letter for an event that failed after validation (refers to its origin)."""
    return DeadLetter(
        topic=source.topic,
        partition=source.partition,
        offset=source.offset,
        key=source.key,
        error=error,
        raw=truncate_raw(raw),
    )


async def send(topic: Any, letter: DeadLetter) -> None:
    """Produce one dead letter (key = the original key) and log it."""
    log.warning(
        "dead letter %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.error
    )
    await topic.send(key=letter.key, value=dumps(letter))
