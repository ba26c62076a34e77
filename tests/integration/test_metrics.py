"""A running worker's /metrics endpoint: the counters move with the events, the latency
histogram counts each recommendation, and the gauges say what the worker serves."""

from __future__ import annotations

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    event,
    item,
    read,
    recommendations_for,
    send,
    send_events,
    send_items,
    unique,
    wait_until,
)
from tooling.local import LocalStack, Scraped

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scrape(stack: LocalStack) -> Scraped:
    return stack.scrape(0)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_the_events(zero_shot_stack: LocalStack) -> None:
    stack = zero_shot_stack
    stack.start_worker()
    before = scrape(stack)
    scenario = unique("metrics")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    events = [
        event(unique("e"), f"{scenario}-u{n % 5}", catalog[n % 10]["item_id"], n, scenario)
        for n in range(40)
    ]
    send_events(stack, events)
    send(stack, stack.kafka.topics.events, [(b"k", b"not json"), (b"k", {"user_id": "x"})])
    recommendations_for(stack, {e["event_id"] for e in events})
    read(stack, stack.kafka.topics.dead_letters, lambda got: len(got) >= 2, timeout=60)

    def moved() -> bool:
        now = scrape(stack)
        return (
            value(now, "streamrec_catalog_items") == len(catalog)
            and value(now, "streamrec_dead_letters_total", kind="invalid_record")
            - value(before, "streamrec_dead_letters_total", kind="invalid_record")
            == 2
        )

    wait_until(moved, timeout=60, what="the gauges and dead-letter counter to move")
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("streamrec_events_in_total", topic="events") == len(events) + 2
    assert delta("streamrec_events_in_total", topic="items") == len(catalog)
    assert delta("streamrec_recommendations_total") == len(events)
    assert delta("streamrec_latency_seconds_count") == len(events)
    assert delta("streamrec_latency_seconds_sum") > 0
    assert delta("streamrec_batch_size_sum") == len(events)
    assert delta("streamrec_ray_call_seconds_count", call="recommend") >= 1
    assert value(after, "streamrec_model_version") == 0  # zero-shot: the frozen model
    # The users' states went into the table's RocksDB memtables (the default store).
    assert value(after, "streamrec_users_store_bytes", part="memtables") > 0
    assert ("streamrec_users_store_bytes", (("part", "block_cache"),)) in after
    lags = {labels: v for (name, labels), v in after.items() if name == "streamrec_consumer_lag"}
    topics = {dict(labels)["topic"] for labels in lags}
    assert topics == {"events", f"{stack.kafka.app_id}-events-by-user"}, topics
    assert len(lags) == 2 * stack.partitions and all(v >= 0 for v in lags.values())
