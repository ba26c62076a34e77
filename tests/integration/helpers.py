"""Helpers for integration tests: real producers/consumers against the real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from tooling.consume import Received, TopicReader, group_lag, read_all, read_raw
from tooling.local import LocalStack
from tooling.produce import encode_record, kafka_producer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send(stack: LocalStack, topic: str, records: Iterable[tuple[bytes | None, Any]]) -> None:
    """Produce (key, value) pairs; dict values become JSON, bytes go as they are."""
    producer = kafka_producer(stack.kafka)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=None if value is None else encode_record(value))
        producer.flush()
    finally:
        producer.close()


def send_items(stack: LocalStack, items: list[dict[str, Any]], wait: bool = True) -> None:
    send(stack, stack.kafka.topics.items, [(i["item_id"].encode(), i) for i in items])
    if wait:
        wait_until(
            lambda: group_lag(stack.kafka, stack.kafka.topics.items) == 0,
            what="catalog indexed",
        )


def send_events(stack: LocalStack, events: list[dict[str, Any]]) -> None:
    send(stack, stack.kafka.topics.events, [(e["user_id"].encode(), e) for e in events])


def wait_until(check: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.3)


def read(
    stack: LocalStack,
    topic: str,
    done: Callable[[list[Received]], bool],
    timeout: float = 120.0,
) -> list[Received]:
    """Everything on ``topic`` (from the beginning) until ``done`` or the timeout."""
    with TopicReader(stack.kafka, [topic]) as reader:
        return reader.read_until(done, timeout)


def recommendations_for(
    stack: LocalStack, event_ids: set[str], timeout: float = 120.0
) -> dict[str, list[Received]]:
    """event_id -> the recommendation messages for it (waits until every id has one)."""

    def done(seen: list[Received]) -> bool:
        return event_ids <= {r.value.get("event_id") for r in seen}

    seen = read(stack, stack.kafka.topics.recommendations, done, timeout)
    if not done(seen):  # judge on a complete read, not on one reader that may have stalled
        seen = read_all(stack.kafka, stack.kafka.topics.recommendations)
    out: dict[str, list[Received]] = {}
    for r in seen:
        if r.value.get("event_id") in event_ids:
            out.setdefault(r.value["event_id"], []).append(r)
    return out


def item(item_id: str, text: str, scenario: str) -> dict[str, Any]:
    return {"item_id": item_id, "text": text, "scenario": scenario}


def event(
    event_id: str, user_id: str, item_id: str, ts: float, scenario: str, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user_id,
        "item_id": item_id,
        "ts": ts,
        "scenario": scenario,
        **extra,
    }


def changelog(stack: LocalStack, timeout: float = 60.0) -> list[tuple[str, bytes | None]]:
    """Every (user_id, value) record of the users table's changelog, read to its end
    (per partition in order; a None value is a tombstone)."""
    topic = f"{stack.kafka.app_id}-users-changelog"
    return [(r.key.decode(), r.value) for r, _ in read_raw(stack.kafka, topic, timeout)]


def latest_states(stack: LocalStack, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """user_id -> the newest value of their state in the users table's changelog (a user
    whose newest record is a tombstone, an expired state, has none)."""
    latest: dict[str, dict[str, Any]] = {}
    for user, value in changelog(stack, timeout):
        if value is None:
            latest.pop(user, None)
        else:
            latest[user] = json.loads(value)
    return latest


def fault_report(
    fault: str,
    events: list[dict[str, Any]],
    recs: dict[str, list[Received]],
    letters: list[Received],
    states: dict[str, dict[str, Any]],
    recovered_s: float | None,
) -> str:
    """One row of docs/RELIABILITY.md: what a fault did to a stream of ``events``."""
    sent = events_per_user(events)
    lost = len({e["event_id"] for e in events} - set(recs))
    twice = sum(max(0, states.get(u, {}).get("events", 0) - n) for u, n in sent.items())
    duplicates = sum(len(found) - 1 for found in recs.values())
    took = "-" if recovered_s is None else f"{recovered_s:.1f} s"
    return (
        f"| {fault} | {len(events)} | {sum(len(f) for f in recs.values())} | {len(letters)} "
        f"| {lost} | {twice} | {duplicates} | {took} |"
    )


def wait_served(stack: LocalStack, ids: set[str], at_least: int, timeout: float = 120) -> None:
    """Wait until ``at_least`` of ``ids`` have a recommendation (a fault lands mid-stream)."""
    with TopicReader(stack.kafka, [stack.kafka.topics.recommendations]) as reader:
        seen = reader.read_until(
            lambda got: sum(r.value["event_id"] in ids for r in got) >= at_least, timeout
        )
    served = {r.value["event_id"] for r in seen} & ids
    assert at_least <= len(served) < len(ids), "the fault must land mid-stream"


def events_per_user(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        counts[e["user_id"]] = counts.get(e["user_id"], 0) + 1
    return counts
