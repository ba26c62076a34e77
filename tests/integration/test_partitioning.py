"""Co-partitioning: every user's state (the users table's changelog) sits on the partition
of their events, as the Java client's partitioner (murmur2 of the raw key) places them,
so any number of workers own exactly the state of what they consume. Events keyed by
their user are served where they land; events keyed otherwise take the by-user topic,
which puts them on that same partition."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from tests.integration.helpers import event, recommendations_for, send, unique
from tooling.local import LocalStack, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 5  # not the default, not a power of two
USERS = 1000


@pytest.fixture(scope="module")
def five() -> Iterator[LocalStack]:
    with local_stack(partitions=PARTITIONS) as running:
        running.start_worker()
        yield running


def java_partition(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_by_key(stack: LocalStack, topic: str) -> dict[bytes, set[int]]:
    """key -> the partitions of ``topic`` holding a record with that key (all of it)."""
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        assert len(parts) == PARTITIONS, f"{topic} has {len(parts)} partitions"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found: dict[bytes, set[int]] = {}
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    found.setdefault(r.key, set()).add(tp.partition)
        return found
    finally:
        consumer.close()


def test_each_user_s_state_is_on_the_partition_of_their_events(five: LocalStack) -> None:
    scenario = unique("parts")
    users = [f"{scenario}-user-{n}" for n in range(USERS)]
    events = [event(f"{u}-e", u, f"{scenario}-item", 1.0, scenario) for u in users]
    # Even users' events keyed by the user (served in place), odd ones by a device id
    # (re-keyed through the by-user topic).
    keyed = {u: (u if n % 2 == 0 else f"device-{n}").encode() for n, u in enumerate(users)}
    send(five, five.kafka.topics.events, [(keyed[e["user_id"]], e) for e in events])
    recs = recommendations_for(five, {e["event_id"] for e in events}, timeout=300)
    assert len(recs) == USERS

    app = five.kafka.app_id
    by_user = partitions_by_key(five, f"{app}-events-by-user")
    changelog = partitions_by_key(five, f"{app}-users-changelog")
    wrong = []
    for user in users:
        key = user.encode()
        expected = {java_partition(key, PARTITIONS)}
        hopped = expected if keyed[user] != key else None
        if not (by_user.get(key) == hopped and changelog.get(key) == expected):
            wrong.append((user, by_user.get(key), changelog.get(key), expected))
    assert not wrong, f"{len(wrong)} of {USERS} users off their partition, e.g. {wrong[:3]}"
    # The users really spread over every partition (so the check above could fail).
    assert {p for ps in changelog.values() for p in ps} == set(range(PARTITIONS))
