"""A worker SIGKILLed mid-stream and restarted loses no event, keeps user state, and
applies no event twice to it (the re-processed tail is served again, applied once)."""

from __future__ import annotations

import random
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
    wait_until,
)
from tooling.consume import group_lag
from tooling.local import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigkilled_worker_restarts_without_losing_events_or_history(
    zero_shot_stack: LocalStack,
) -> None:
    # The bulk below is random noise: training is off; the trainer's resume is
    # test_online_learning's.
    stack = zero_shot_stack
    worker = stack.start_worker()
    scenario = unique("kill")
    space = [item(f"{scenario}-space-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    other = [
        item(f"{scenario}-other-{n}", t, scenario)
        for n, t in enumerate(themes.COOKING + themes.GARDEN)
    ]
    send_items(stack, space + other)

    # A space fan whose history must survive the crash (it lives in the changelog).
    fan = unique("fan")
    fan_events = [
        event(unique("e"), fan, s["item_id"], float(n), scenario) for n, s in enumerate(space[:8])
    ]
    send_events(stack, fan_events)
    recommendations_for(stack, {e["event_id"] for e in fan_events})

    rng = random.Random(7)
    catalog_ids = [i["item_id"] for i in space + other]
    bulk = [
        event(
            unique("e"),
            f"{scenario}-u{rng.randrange(40)}",
            rng.choice(catalog_ids),
            100.0 + n,
            scenario,
        )
        for n in range(3000)
    ]
    bulk_ids = {e["event_id"] for e in bulk}
    send_events(stack, bulk)
    wait_served(stack, bulk_ids, at_least=300)
    stack.kill_worker(worker)  # SIGKILL, whole process group: no shutdown code runs
    killed = time.monotonic()

    stack.start_worker(index=1)
    probe = event(unique("e"), fan, space[8]["item_id"], 10_000.0, scenario)
    send_events(stack, [probe])
    recs = recommendations_for(stack, bulk_ids | {probe["event_id"]}, timeout=300)
    recovered = time.monotonic() - killed

    lost = bulk_ids - set(recs)
    assert not lost, (
        f"lost {len(lost)} of {len(bulk_ids)} events (logs under {stack.workdir});"
        f" restarted worker:\n{stack.log_tail(1, 60)}"
    )
    [probe_rec] = recs[probe["event_id"]]
    got = [i["item_id"] for i in probe_rec.value["items"]]
    before_crash = {e["item_id"] for e in fan_events}
    assert not before_crash & set(got), f"history lost in the crash: recommended {got}"
    assert space[9]["item_id"] in got[:3], f"the fan's taste was lost: {got}"
    letters = read(stack, stack.kafka.topics.dead_letters, lambda _: False, timeout=2)
    assert not letters, [d.value for d in letters]
    # ... and committed: a record the restarted worker never finished would hold its
    # partition's commits back for good (stream/seek races left them stuck or skipping).
    # An event that took the by-user hop is committed on `events` once forwarded, so
    # both topics are waited for before states are read.
    inputs = [stack.kafka.topics.events, f"{stack.kafka.app_id}-events-by-user"]
    wait_until(
        lambda: all(group_lag(stack.kafka, t) == 0 for t in inputs), 60, "every event committed"
    )

    # Exactly-once effect on state: each user's state counts the events sent to them,
    # though the tail re-processed after the kill produced duplicate recommendations.
    everything = [*fan_events, *bulk, probe]
    sent = events_per_user(everything)
    states = latest_states(stack)
    counted = {user: states[user]["events"] for user in sent}
    assert counted == sent, {u: (counted[u], n) for u, n in sent.items() if counted[u] != n}
    served = {**recommendations_for(stack, {e["event_id"] for e in fan_events}), **recs}
    print(
        fault_report("worker SIGKILLed, restarted", everything, served, letters, states, recovered)
    )
