"""Routing of records that cannot be processed to the dead-letter topic.

A dead letter is bounded whatever the record: its key, reason and raw record are cut
(`KEY_LIMIT`, `ERROR_LIMIT`, `RAW_LIMIT` bytes, each at most 6 JSON bytes per byte), so it
always fits the producer's message limit. Sending it is not guarded here: the agents
send through a batch's `streams.delivery.Receipts`, which confirm every delivery before
the batch's offsets go (a transient failure sent again, any other raised, so the
record's offset is not committed).
"""

from __future__ import annotations

import logging
from typing import Any

from streams import metrics
from streams.schemas import ERROR_LIMIT, DeadLetter, SourceRef, dumps, key_text, truncate_raw

log = logging.getLogger(__name__)

# Why a record is a dead letter, in kinds (the metrics' label; the letter says exactly why).
INVALID = "invalid_record"  # an input record breaks the contract
INTERNAL = "bad_internal_record"  # a by-user record no compatible ingest agent wrote
UNREADABLE_STATE = "unreadable_state"  # the user's stored state cannot be read
FAILED = "processing_failed"  # the worker code failed on this record alone (or gave up)
KINDS = (INVALID, INTERNAL, UNREADABLE_STATE, FAILED)


def letter(
    topic: str, partition: int, offset: int, key: bytes | str | None, error: str, raw: Any
) -> DeadLetter:
    """A bounded dead letter for the record at ``topic[partition]@offset``."""
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key_text(key),
        error=truncate_raw(error, ERROR_LIMIT),
        raw=truncate_raw(raw),
    )


def from_message(message: Any, error: str) -> DeadLetter:
    """A dead letter for a raw Kafka message (faust `Message`)."""
    return letter(
        message.topic, message.partition, message.offset, message.key, error, message.value
    )


def from_source(source: SourceRef, error: str, raw: bytes | str | None) -> DeadLetter:
    """A dead letter for an event that failed after validation (refers to its origin)."""
    return letter(source.topic, source.partition, source.offset, source.key, error, raw)


async def send(topic: Any, dead: DeadLetter, kind: str) -> None:
    """Produce one dead letter (key = the original key, cut), log it and count its kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown dead-letter kind {kind!r}")
    log.warning("dead letter %s[%d]@%d: %s", dead.topic, dead.partition, dead.offset, dead.error)
    await topic.send(key=dead.key, value=dumps(dead))
    metrics.DEAD_LETTERS.labels(kind=kind).inc()
