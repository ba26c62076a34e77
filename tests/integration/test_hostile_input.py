"""Hostile input against a running worker (issue 10): more than 50 kinds of bad or odd
record, events and items, each between good events.

Checked through Kafka only: every good event is served; each hostile record is served
(an event: its recommendation; an item: consumed without a dead letter) or
dead-lettered with the reason expected of it, as that record (topic, partition,
offset); every dead letter fits the producer's limit; no score in any recommendation
is non-finite; the worker is alive and no agent crashed. The worker reads records of
at most 600,000 bytes here (STREAMREC_LIMITS__RECORD_BYTES), so a record over that
limit can still be produced with the client's default 1 MB request limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration import themes
from tests.integration.helpers import event, item, recommendations_for, unique, wait_until
from tooling.consume import Received, TopicReader, group_lag
from tooling.local import LocalStack, local_stack
from tooling.produce import encode_record, kafka_producer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD_BYTES = 600_000
PRODUCER_LIMIT = 1_048_576
SERVED = ""  # expected outcome: served (an event) or indexed (an item)


@pytest.fixture(scope="module")
def hostile_stack() -> Iterator[LocalStack]:
    with local_stack(partitions=2, env={"STREAMREC_LIMITS__RECORD_BYTES": str(RECORD_BYTES)}) as s:
        s.start_worker()
        yield s


@dataclass
class Hostile:
    """One hostile record and what must become of it: SERVED, or a dead letter whose
    reason contains ``expect``."""

    kind: str
    topic: str  # "events" or "items" (the stack's names)
    key: bytes | None
    value: bytes | None
    expect: str
    event_id: str | None = None  # the id its recommendation carries, when served
    partition: int = -1
    offset: int = -1


def raw(text: str) -> bytes:
    """JSON written by hand (lone surrogates, NaN, huge numbers stay as written)."""
    return text.encode("utf-8")


def hostile_events(user: str, known: str, scenario: str) -> list[Hostile]:
    """(kind, value, expected) for the `events` topic; served ones carry an event id."""
    out: list[Hostile] = []

    def add(kind: str, value: Any, expect: str, key: bytes | None = b"hostile") -> None:
        event_id = value.get("event_id") if isinstance(value, dict) else None
        if value is not None and not isinstance(value, bytes):
            value = encode_record(value)
        served = event_id if expect == SERVED else None
        out.append(Hostile(kind, "events", key, value, expect, served))

    def raw_served(kind: str, text: str) -> None:
        """A served event written by hand: its id is the one in ``text``."""
        event_id = json.loads(text)["event_id"]
        out.append(Hostile(kind, "events", b"hostile", raw(text), SERVED, event_id))

    def ok(**changes: Any) -> dict[str, Any]:
        return {**event(unique("h"), user, known, 1000.0, scenario), **changes}

    head = '{"user_id": "' + user + '", "item_id": "' + known + '", "ts": 1000, '
    bare = '{"user_id": "u", "item_id": "i", "ts": '
    digits = "9" * 5000
    # the JSON itself
    add("deep nesting", raw(head + '"x": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nested")
    add("nesting past the limit", raw(head + '"x": ' + "[" * 20 + "]" * 20 + "}"), "nested")
    raw_served("nesting within the limit", head + f'"event_id": "{unique("h")}", "x": [[[[1]]]]}}')
    add("5,000-digit ts", raw(bare + digits + "}"), "ValueError")
    add("4,000-digit ts", raw(bare + digits[:4000] + "}"), "ts:")
    add("10**30 weight", raw(head + '"weight": ' + "1" + "0" * 30 + "}"), "weight must be <=")
    add("lone surrogate in text", raw(head + '"text": "a \\ud800 b"}'), "surrogate")
    add(
        "lone surrogate in user_id",
        raw('{"user_id": "\\udfff", "item_id": "i", "ts": 1}'),
        "surrogate",
    )
    add("lone surrogate in a key", raw(head + '"x": {"\\ud800": 1}}'), "surrogate")
    add("NaN weight", raw(head + '"weight": NaN}'), "finite")
    add("Infinity ts", raw(bare + "Infinity}"), "finite")
    add("1e400 weight", raw(head + '"weight": 1e400}'), "finite")
    add("not JSON", b"{not json", "not valid UTF-8 JSON")
    add("invalid UTF-8", b'{"user_id": "\xff\xfe", "item_id": "i", "ts": 1}', "UnicodeDecodeError")
    add("null value (tombstone)", None, "null record")
    add("empty value", b"", "not valid UTF-8 JSON|null record")  # a client may send b"" as null
    add("JSON array", [1, 2, 3], "valid dictionary")
    add("JSON string", "an event", "valid dictionary")
    add("JSON number", 42, "valid dictionary")
    add("over the record size limit", ok(text="t" * (RECORD_BYTES + 50_000)), "over the limit")
    again = f'"user_id": "{user}", "event_id": "{unique("h")}"}}'
    raw_served("duplicate keys (the last wins)", head + again)
    # ids and scenario
    add("100,000-character user_id", ok(user_id="u" * 100_000), "user_id: 100000 bytes")
    add("600-character event_id", ok(event_id="e" * 600), "event_id: 600 bytes")
    add("200,000-character scenario", ok(scenario="s" * 200_000), "scenario: 200000 bytes")
    add("NUL in user_id", ok(user_id=f"{user}\x00"), "control character U+0000")
    add("NUL in item_id", ok(item_id="i\x00tem"), "control character U+0000")
    add("C1 control in item_id", ok(item_id="i\x85tem"), "control character U+0085")
    add("newline in type", ok(type="click\nview"), "control character U+000A")
    add("blank user_id", ok(user_id="   "), "at least 1 character")
    no_user = {k: v for k, v in ok().items() if k != "user_id"}
    add("missing user_id", no_user, "user_id: Field required")
    add("user_id a number", ok(user_id=7), "user_id: Input should be a valid string")
    add("256-byte user_id (the limit)", ok(user_id="ü" * 128), SERVED)
    add("257-byte user_id", ok(user_id="u" + "ü" * 128), "user_id: 257 bytes")
    add("padded user_id (stripped)", ok(user_id=f"  {user}  "), SERVED)
    add("right-to-left override in user_id", ok(user_id=f"{user}\u202e"), SERVED)
    add("a new unicode scenario", ok(scenario=f"电影-{unique('s')}"), SERVED)
    add("unknown item", ok(item_id=unique("nowhere")), SERVED)
    # text
    add("500,000-character text (cut)", ok(text="w" * 500_000), SERVED)
    add("text with NUL and emoji", ok(text="a\x00b 🚀 \u200b rtl \u202e"), SERVED)
    add("empty text", ok(text=""), SERVED)
    add("text a list", ok(text=["a", "b"]), "text: Input should be a valid string")
    # weight and ts
    add("weight 1e308", ok(weight=1e308), "weight must be <=")
    add("weight 1e39", ok(weight=1e39), "weight must be <=")
    add("weight 0", ok(weight=0), "weight must be > 0")
    add("negative weight", ok(weight=-3.5), "weight must be > 0")
    add("weight a bool", ok(weight=True), "weight: Input should be a valid number")
    add("weight at the maximum", ok(weight=1000.0), SERVED)
    add("tiny weight", ok(weight=1e-300), SERVED)
    add("ts -1e12", ok(ts=-1e12), "ts must be epoch seconds")
    add("ts 1e300", ok(ts=1e300), "ts must be epoch seconds")
    add("ts in milliseconds", ok(ts=1.7e12), "ts must be epoch seconds")
    add("ts a string", ok(ts="soon"), "ts: Input should be a valid number")
    add("ts 0", ok(ts=0), SERVED)
    # the record around it
    add("a thousand unknown fields", ok(**{f"f{n}": n for n in range(1000)}), SERVED)
    add("100,000-byte key", ok(), SERVED, key=b"k" * 100_000)
    add("invalid UTF-8 key", ok(), SERVED, key=b"\xff\xfe\x00")
    add("no key", ok(), SERVED, key=None)
    return out


def hostile_items(scenario: str) -> list[Hostile]:
    out: list[Hostile] = []

    def add(kind: str, value: Any, expect: str, key: bytes | None = b"hostile-item") -> None:
        value = value if isinstance(value, bytes) or value is None else encode_record(value)
        out.append(Hostile(kind, "items", key, value, expect))

    def ok(**changes: Any) -> dict[str, Any]:
        return {**item(unique("hi"), "A quiet film about gardens.", scenario), **changes}

    bad_attributes = {f"k{n}": [{"bad": n}] for n in range(15_000)}
    deep = "[" * 50_000 + "]" * 50_000
    add(
        "deep nesting in attributes",
        raw('{"item_id": "i", "text": "t", "attributes": ' + deep + "}"),
        "nested",
    )
    add("500 kB of bad attributes", ok(attributes=bad_attributes), "attributes: 15000 attributes")
    add("65 attributes", ok(attributes={f"a{n}": n for n in range(65)}), "over the limit of 64")
    add("20 kB of attributes", ok(attributes={"blurb": "z" * 20_000}), "bytes of JSON")
    add("a nested attribute", ok(attributes={"a": {"b": 1}}), "attributes.a")
    add("a lone surrogate in text", raw('{"item_id": "i", "text": "x \\udc80"}'), "surrogate")
    add("NUL in item_id", ok(item_id="i\x00"), "control character U+0000")
    add("100,000-character item_id", ok(item_id="i" * 100_000), "item_id: 100000 bytes")
    add("200,000-character scenario", ok(scenario="s" * 200_000), "scenario: 200000 bytes")
    add("ts 1e300", ok(ts=1e300), "ts must be epoch seconds")
    add(
        "5,000-digit ts",
        raw('{"item_id": "i", "text": "t", "ts": ' + "9" * 5000 + "}"),
        "ValueError",
    )
    add("missing text", {"item_id": unique("hi")}, "text: Field required")
    add("blank text", ok(text="  \n "), "text: String should have at least 1 character")
    add("null value (a tombstone: deletes the item)", None, SERVED)
    # (kafka-python cannot send a record with neither key nor value: unit-tested instead)
    add("tombstone with a NUL in its key", None, "control character U+0000", key=b"i\x00")
    add("tombstone with a blank key", None, "blank key", key=b"  ")
    add("not JSON", b"<item/>", "not valid UTF-8 JSON")
    add("500,000-character text (cut)", ok(text="garden " * 70_000), SERVED)
    most = {f"a{n}": [n, "x"] for n in range(64)}
    add("emoji text and 64 attributes", ok(text="🌹 roses", attributes=most), SERVED)
    return out


Record = tuple[str, bytes | None, bytes | None]  # (topic, key, value)


def produce(stack: LocalStack, records: list[Record]) -> list[tuple[int, int]]:
    """(topic, key, value) in order, one at a time -> (partition, offset) of each."""
    producer = kafka_producer(stack.kafka)
    try:
        placed = []
        for topic, key, value in records:
            meta = producer.send(topic, key=key, value=value).get(timeout=60)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        producer.close()


def all_of(stack: LocalStack, topic: str) -> list[Received]:
    """Every record on ``topic`` now (to its end offsets)."""
    with TopicReader(stack.kafka, [topic]) as reader:
        parts = list(reader.consumer.assignment())
        total = sum(reader.consumer.end_offsets(parts).values())
        return reader.read_until(lambda seen: len(seen) >= total, 120)


def test_hostile_records_between_good_events(hostile_stack: LocalStack) -> None:
    stack = hostile_stack
    topics = stack.kafka.topics
    scenario = unique("hostile")
    texts = themes.SPACE + themes.COOKING
    catalog = [item(f"{scenario}-{n}", text, scenario) for n, text in enumerate(texts)]
    produce(stack, [(topics.items, i["item_id"].encode(), encode_record(i)) for i in catalog])
    wait_until(lambda: group_lag(stack.kafka, topics.items) == 0, what="catalog indexed")

    users = [unique("good") for _ in range(3)]
    hostile = hostile_events(users[0], catalog[0]["item_id"], scenario)
    hostile += hostile_items(scenario)
    topic_of = {"events": topics.events, "items": topics.items}
    assert len({(h.topic, h.kind) for h in hostile}) == len(hostile) >= 50

    # good event, hostile record, good event, ... (each user's good events in time order)
    good: list[dict[str, Any]] = []
    records: list[Record] = []
    for n, h in enumerate([*hostile, None]):
        user = users[n % len(users)]
        e = event(unique("g"), user, catalog[n % len(catalog)]["item_id"], 2000.0 + n, scenario)
        good.append(e)
        records.append((topics.events, user.encode(), encode_record(e)))
        if h is not None:
            records.append((topic_of[h.topic], h.key, h.value))
    placed = produce(stack, records)
    for h, (partition, offset) in zip(hostile, placed[1::2], strict=True):
        h.partition, h.offset = partition, offset

    served_ids = {h.event_id for h in hostile if h.expect == SERVED and h.event_id}
    recs = recommendations_for(stack, {e["event_id"] for e in good} | served_ids, timeout=240)
    assert {e["event_id"] for e in good} <= set(recs), "a good event was not served"
    missing = [h.kind for h in hostile if h.event_id in served_ids and h.event_id not in recs]
    assert not missing, f"hostile events expected to be served were not: {missing}"

    # Once both input topics are committed, every dead letter of theirs is on its topic.
    for topic in (topics.events, topics.items):
        wait_until(lambda t=topic: group_lag(stack.kafka, t) == 0, what=f"{topic} consumed")
    letters = all_of(stack, topics.dead_letters)
    by_place = {(d.value["topic"], d.value["partition"], d.value["offset"]): d for d in letters}
    wrong = []
    for h in hostile:
        letter = by_place.get((topic_of[h.topic], h.partition, h.offset))
        reason = "" if letter is None else letter.value["error"]
        if h.expect == SERVED and letter is not None:
            wrong.append(f"{h.kind}: dead-lettered ({reason[:120]})")
        elif h.expect != SERVED and not any(a in reason for a in h.expect.split("|")):
            wrong.append(f"{h.kind}: expected a dead letter with {h.expect!r}, got {reason!r}")
    assert not wrong, "\n".join(wrong)
    assert len(letters) == len([h for h in hostile if h.expect != SERVED])

    # Bounded dead letters; finite scores everywhere; the worker alive, no agent crashed.
    for d in letters:
        size = len(json.dumps(d.value).encode()) + len((d.key or "").encode())
        assert size < PRODUCER_LIMIT // 10
    every = all_of(stack, topics.recommendations)
    assert len(every) >= len(recs)
    scores = [i["score"] for r in every for i in r.value["items"]]
    assert scores and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert all(w.poll() is None for w in stack.workers), stack.log_tail()
    assert "Crashed reason" not in stack.log_tail(lines=100_000), stack.log_tail()
