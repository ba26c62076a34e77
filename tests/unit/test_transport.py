"""The Faust transport's fix for Tansu's short ListOffsets, against a real Tansu process
(well under a second to start, hence the ``integration`` mark)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

from streams.settings import KafkaConfig
from streams.transport import true_highwaters
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
    real = asyncio.run(true_highwaters([broker.bootstrap], reported))
    assert real == {tps[0]: 7, tps[1]: 0, tps[2]: 0}
