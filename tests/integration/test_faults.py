"""Faults under a running stream: what is lost (nothing), applied twice (nothing), dead-
lettered (nothing: the records are good) and how long the stream takes to recover."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    event,
    events_per_user,
    fault_report,
    item,
    latest_states,
    read,
    recommendations_for,
    send_events,
    send_items,
    unique,
    wait_served,
)
from tooling.local import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


def test_a_30_second_broker_outage_loses_nothing_and_dead_letters_nothing(
    zero_shot_stack: LocalStack,
) -> None:
    stack = zero_shot_stack
    stack.start_worker()
    scenario = unique("outage")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    events = [
        event(unique("e"), f"{scenario}-u{n % 40}", catalog[n % 8]["item_id"], n, scenario)
        for n in range(3000)
    ]
    ids = {e["event_id"] for e in events}
    send_events(stack, events)
    wait_served(stack, ids, at_least=300)

    broker = stack.broker.process.pid
    os.kill(broker, signal.SIGSTOP)  # the broker freezes; its data stays
    time.sleep(30)
    os.kill(broker, signal.SIGCONT)
    resumed = time.monotonic()

    recs = recommendations_for(stack, ids, timeout=300)
    recovery = time.monotonic() - resumed
    lost = ids - set(recs)
    assert not lost, f"lost {len(lost)}; worker:\n{stack.log_tail(0, 40)}"
    letters = read(stack, stack.kafka.topics.dead_letters, lambda _: False, timeout=2)
    assert not letters, [d.value["error"] for d in letters][:3]
    sent = events_per_user(events)
    states = latest_states(stack)
    assert {u: states[u]["events"] for u in sent} == sent, "an event applied twice or lost"
    assert stack.workers[0].poll() is None, "the worker died"
    print(fault_report("broker SIGSTOP 30 s", events, recs, letters, states, recovery))
