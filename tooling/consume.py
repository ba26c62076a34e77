"""Reading output topics with a plain Kafka consumer (what any user's consumer does)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.kafka_auth import client_kwargs
from streams.kafka_settings import KafkaConfig


@dataclass(frozen=True)
class Received:
    topic: str
    key: str | None
    value: dict[str, Any]
    received_at: float  # epoch seconds when this consumer got it
    timestamp: float  # the record's Kafka timestamp, epoch seconds


class TopicReader:
    """Reads whole topics from the beginning (``assign``, no group: nothing to wait for)."""

    def __init__(self, kafka: KafkaConfig, topics: list[str]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_kwargs(kafka),
        )
        partitions: list[Any] = []
        for topic in topics:
            ids = self.consumer.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        if not partitions:
            self.consumer.close()
            raise RuntimeError(f"none of the topics {topics} exist")
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)

    def poll(self, timeout: float = 0.2) -> list[Received]:
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000))
        now = time.time()
        return [_received(r, now) for records in batches.values() for r in records]

    def read_until(
        self,
        done: Callable[[list[Received]], bool],
        timeout: float,
        on_batch: Callable[[list[Received]], None] | None = None,
    ) -> list[Received]:
        """Collect messages until ``done(all so far)`` or ``timeout`` seconds pass."""
        seen: list[Received] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.poll()
            if batch:
                seen.extend(batch)
                if on_batch:
                    on_batch(batch)
            if done(seen):
                break
        return seen

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all(kafka: KafkaConfig, topic: str, timeout: float = 60.0) -> list[Received]:
    """Every record of ``topic`` now, decoded (`read_raw`)."""
    return [_received(r, at) for r, at in read_raw(kafka, topic, timeout)]


def read_raw(kafka: KafkaConfig, topic: str, timeout: float = 60.0) -> list[tuple[Any, float]]:
    """Every record of ``topic`` now, as kafka-python gives it, with when it was read;
    partition by partition, each in offset order. Each partition is read by a consumer
    of its own from the start to its end offset as a fetch reports it: a complete
    snapshot, where `TopicReader` (one consumer over every partition) has once been seen
    to receive only one partition's records for a minute (docs/ENVIRONMENT-NOTES.md).
    TimeoutError names a partition that could not be read to its end within ``timeout``
    seconds."""
    from kafka import KafkaConsumer, TopicPartition

    out: list[tuple[Any, float]] = []
    deadline = time.monotonic() + timeout
    probe = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers(), **client_kwargs(kafka))
    try:
        parts = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or ())]
        ends = fetched_end_offsets(probe, parts)
    finally:
        probe.close()
    for tp in parts:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers(),
            enable_auto_commit=False,
            **client_kwargs(kafka),
        )
        try:
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            while consumer.position(tp) < ends[tp]:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{topic}-{tp.partition}: read to {consumer.position(tp)} of {ends[tp]}"
                    )
                now = time.time()
                for records in consumer.poll(timeout_ms=200).values():
                    out += [(r, now) for r in records]
        finally:
            consumer.close()
    return out


def _received(r: Any, now: float) -> Received:
    return Received(
        topic=r.topic,
        key=r.key.decode("utf-8", "replace") if r.key is not None else None,
        value=json.loads(r.value),
        received_at=now,
        timestamp=r.timestamp / 1000.0,
    )


def group_lag(kafka: KafkaConfig, topic: str, group: str | None = None) -> int:
    """Records of ``topic`` not yet committed by the workers' consumer group.

    That group is the Faust app id, ``kafka.app_id``; ``group`` names another one (tests
    of the lag itself). A streamrec worker commits an offset only after the record's
    work is done (an item indexed, an event's recommendation produced), so lag 0 means
    "all processed".
    """
    from kafka import KafkaConsumer, TopicPartition

    # committed() is a plain OffsetFetch: this consumer never joins the group.
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers(),
        group_id=group or kafka.app_id,
        enable_auto_commit=False,
        **client_kwargs(kafka),
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = fetched_end_offsets(consumer, parts)
        return sum(max(0, ends[tp] - (consumer.committed(tp) or 0)) for tp in parts)
    finally:
        consumer.close()


def fetched_end_offsets(consumer: Any, parts: list[Any], timeout: float = 10.0) -> dict[Any, int]:
    """Each partition's end offset as a fetch reports it (its high watermark).

    Not ``end_offsets()``: the embedded broker (Tansu 0.6, memory storage) answers
    ListOffsets with "first offset of the last batch + 1", short of the real end when the
    last produce request carried several records. A fetch's high watermark is right.
    """
    listed = consumer.end_offsets(parts)
    found = {tp: 0 for tp in parts if listed[tp] == 0}  # empty partitions
    pending = [tp for tp in parts if tp not in found]
    if pending:
        consumer.assign(pending)
        for tp in pending:
            consumer.seek(tp, listed[tp] - 1)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
            for tp in list(pending):
                if (mark := consumer.highwater(tp)) is not None:
                    found[tp] = mark
                    pending.remove(tp)
        consumer.assign([])
    for tp in pending:  # no fetch answered: fall back to the listed offset
        found[tp] = listed[tp]
    return found
