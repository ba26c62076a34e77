"""The Faust transport's fix for Tansu's short ListOffsets, against a real Tansu process
(well under a second to start, hence the ``integration`` mark)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

from streams.kafka_settings import KafkaConfig
from streams.transport import DrainableBuffer, true_highwaters
from tooling.broker import EmbeddedBroker, create_topics

pytestmark = pytest.mark.integration


def produce_in_batches(bootstrap: str, topic: str, batches: list[int]) -> None:
    """Records to partition 0, each group of ``batches`` in one producer batch."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    try:
        for size in batches:
            for n in range(size):
                producer.send(topic, value=b"x%d" % n, partition=0)
            producer.flush()
    finally:
        producer.close()


async def list_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def test_recovery_reads_to_the_end_a_fetch_reports(broker: EmbeddedBroker) -> None:
    kafka = KafkaConfig(broker=broker.bootstrap, partitions=3)
    create_topics(kafka, ["changelog"])
    produce_in_batches(broker.bootstrap, "changelog", [3, 4])  # 7 records, 2 batches
    tps = [TopicPartition("changelog", p) for p in range(3)]
    reported = asyncio.run(list_offsets(broker.bootstrap, tps))
    assert reported[tps[0]] < 7, "Tansu's ListOffsets is right now: the fix may be unneeded"
    real = asyncio.run(true_highwaters(kafka, reported))
    assert real == {tps[0]: 7, tps[1]: 0, tps[2]: 0}


def slow_write(sent: list[int], n: int) -> Any:
    """A queued write whose hand-over to the client takes 0.25 s (a broker slow to accept
    during a rebalance); it records that it went."""

    async def publish_message(fut: Any, wait: bool) -> None:
        await asyncio.sleep(0.25)
        sent.append(n)

    return SimpleNamespace(
        message=SimpleNamespace(channel=SimpleNamespace(publish_message=publish_message))
    )


async def fill_and_flush(drain: bool) -> tuple[int, int]:
    """(writes sent, writes not sent) after flushing 3 queued writes with faust's
    ``flush`` or with ``drain``."""
    buffer = DrainableBuffer()
    buffer.app = faust.App("drain-test", producer_threaded=False)
    sent: list[int] = []
    await buffer.start()
    try:
        for n in range(3):
            buffer.put(slow_write(sent, n))
        await (buffer.drain() if drain else buffer.flush())
        return len(sent), 3 - len(sent)
    finally:
        await buffer.drain()  # stopping a buffer with queued writes raises
        await buffer.stop()


def test_faust_flush_leaves_writes_unsent_and_drain_does_not() -> None:
    _, unsent = asyncio.run(fill_and_flush(drain=False))
    assert unsent > 0, "faust's flush now drains: DrainableBuffer may be unneeded"
    assert asyncio.run(fill_and_flush(drain=True)) == (3, 0)
