"""Producing contract records with a plain Kafka client (what any user's producer does)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from streams.kafka_auth import client_kwargs
from streams.settings import KafkaConfig
from tooling.datasets import Record


def kafka_producer(kafka: KafkaConfig) -> Any:
    """A kafka-python producer for ``kafka``'s brokers, with its TLS/SASL settings."""
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers(),
        linger_ms=5,
        acks="all",
        **client_kwargs(kafka),
    )


def encode_record(record: Record | bytes) -> bytes:
    """A record as contract JSON (bytes pass through: used to send malformed input)."""
    return record if isinstance(record, bytes) else json.dumps(record).encode("utf-8")


def produce(
    producer: Any,
    topic: str,
    records: Iterable[Record],
    key_field: str,
    *,
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send records keyed by ``record[key_field]``, at most ``rate`` per second.

    Returns the number sent. ``on_sent(n)`` is called every 100 records (progress).
    """
    start = time.monotonic()
    sent = 0
    for record in records:
        if rate:
            ahead = start + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        key = str(record.get(key_field, "")).encode("utf-8")
        producer.send(topic, key=key, value=encode_record(record))
        sent += 1
        if on_sent and sent % 100 == 0:
            on_sent(sent)
    producer.flush()
    if on_sent:
        on_sent(sent)
    return sent
