"""The embedded Kafka-protocol broker (Tansu) with plain kafka-python clients.

Starts a real broker process (well under a second), hence the ``integration`` mark.
"""

from __future__ import annotations

import json
import socket
import time
import traceback

import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams.kafka_settings import KafkaConfig
from tooling.broker import EmbeddedBroker, create_topics, start_broker
from tooling.consume import TopicReader, group_lag, read_all

pytestmark = pytest.mark.integration

PARTITIONS = 3  # not the default (4): shows the configured count is used
CONTRACT_TOPICS = {"items", "events", "recommendations", "dead-letters"}


@pytest.fixture(scope="module")
def kafka(broker: EmbeddedBroker) -> KafkaConfig:
    config = KafkaConfig(broker=broker.bootstrap, partitions=PARTITIONS)
    assert config.broker == broker.url
    create_topics(config)
    return config


def partitions(kafka: KafkaConfig, topic: str) -> set[int] | None:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers())
    try:
        return consumer.partitions_for_topic(topic)
    finally:
        consumer.close()


def send(
    kafka: KafkaConfig, topic: str, values: list[dict[str, object]], *, one_by_one: bool
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers())
    try:
        for value in values:
            key = str(value.get("user_id", "")).encode() if "user_id" in value else None
            producer.send(topic, key=key, value=json.dumps(value).encode("utf-8"))
            if one_by_one:
                producer.flush()
        producer.flush()
    finally:
        producer.close()


def test_create_topics_makes_the_contract_topics(kafka: KafkaConfig) -> None:
    for topic in CONTRACT_TOPICS:
        assert partitions(kafka, topic) == set(range(PARTITIONS)), topic
    assert not partitions(kafka, "no-such-topic")  # Tansu answers with no partitions


def test_create_topics_is_idempotent(kafka: KafkaConfig) -> None:
    assert create_topics(kafka) == []
    # An existing topic is left as it is, whatever the partition count asked now.
    assert create_topics(kafka.model_copy(update={"partitions": 1})) == []
    assert partitions(kafka, "events") == set(range(PARTITIONS))


def test_create_topics_by_name(kafka: KafkaConfig) -> None:
    assert create_topics(kafka, ["side-topic", "events"]) == ["side-topic"]
    assert partitions(kafka, "side-topic") == set(range(PARTITIONS))


def test_produce_then_read_round_trip(kafka: KafkaConfig) -> None:
    create_topics(kafka, ["roundtrip"])
    values: list[dict[str, object]] = [{"user_id": f"u{i % 3}", "n": i} for i in range(12)]
    values.append({"no_key": "é"})
    before = time.time()
    send(kafka, "roundtrip", values, one_by_one=False)
    with TopicReader(kafka, ["roundtrip"]) as reader:
        got = reader.read_until(lambda seen: len(seen) >= len(values), timeout=20)
        assert reader.poll(timeout=0.3) == []  # nothing more than what was sent
    assert sorted((r.value for r in got), key=json.dumps) == sorted(values, key=json.dumps)
    assert {r.topic for r in got} == {"roundtrip"}
    for r in got:
        assert r.key == r.value.get("user_id")
        assert before - 5 <= r.timestamp <= r.received_at + 1
    # Per key (= per partition) order is kept.
    for user in ("u0", "u1", "u2"):
        assert [r.value["n"] for r in got if r.key == user] == [
            v["n"] for v in values if v.get("user_id") == user
        ]


def test_topic_reader_needs_an_existing_topic(kafka: KafkaConfig) -> None:
    with pytest.raises(RuntimeError, match="none of the topics") as info:
        TopicReader(kafka, ["absent-topic"])
    # TopicReader.__init__ does not close its consumer when it raises (see the report);
    # close it here so its connection does not hold up the broker's shutdown (~5 s).
    for frame, _ in traceback.walk_tb(info.tb):
        reader = frame.f_locals.get("self")
        if isinstance(reader, TopicReader):
            reader.close()


def test_group_lag_of_a_group_that_never_committed(kafka: KafkaConfig) -> None:
    create_topics(kafka, ["lagged"])
    assert group_lag(kafka, "lagged", group="nobody") == 0
    # One record per produce request: Tansu 0.6 (memory storage) answers ListOffsets
    # with the last *batch's* base offset + 1, so batched records are under-counted
    # (see the report); single-record batches give the true end offsets.
    values: list[dict[str, object]] = [{"user_id": f"u{i}"} for i in range(7)]
    send(kafka, "lagged", values, one_by_one=True)
    assert group_lag(kafka, "lagged", group="nobody") == 7
    # Without ``group``: the workers' group, the Faust app id (no worker ran: all lag).
    assert group_lag(kafka, "lagged") == 7
    assert group_lag(kafka, "absent-topic", group="nobody") == 0


def test_read_all_reads_every_partition_to_its_end(kafka: KafkaConfig) -> None:
    # Partition 0 holds more than one fetch takes (Tansu fills a fetch from the first
    # partition listed, up to 5 MB: the others get nothing from it), and every partition
    # ends in a batch of many records (past what ListOffsets reports).
    create_topics(kafka, ["everything"])
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers(), linger_ms=20)
    try:
        pad = "x" * 1000
        for n in range(6000):
            producer.send("everything", json.dumps({"n": n, "pad": pad}).encode(), partition=0)
        for n in range(6000, 6060):
            value = json.dumps({"n": n}).encode()
            producer.send("everything", value, partition=1 + n % (PARTITIONS - 1))
        producer.flush()
    finally:
        producer.close()
    got = sorted(int(r.value["n"]) for r in read_all(kafka, "everything"))
    assert got == list(range(6060))


def test_broker_process_is_gone_after_stop() -> None:
    broker = start_broker()
    assert broker.process.poll() is None
    with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
        pass
    broker.stop()
    assert broker.process.poll() is not None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", broker.port), timeout=1):
        pass
    broker.stop()  # a second stop does nothing
