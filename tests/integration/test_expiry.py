"""Idle users expire in a running worker: their state is removed and its changelog
record tombstoned; a user still active keeps theirs; an expired user who comes back
starts over, as a new user."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    event,
    item,
    latest_states,
    recommendations_for,
    send_events,
    send_items,
    unique,
    wait_until,
)
from tooling.local import LocalStack, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IDLE = 6.0  # seconds without an event before a state expires (the default is 30 days)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    env = {
        "STREAMREC_TRAINING__MODE": "zero-shot",
        "STREAMREC_USERS__IDLE_EXPIRY": str(IDLE),
        "STREAMREC_USERS__EXPIRY_INTERVAL": "1",
    }
    with local_stack(partitions=2, env=env, workdir=tmp_path / "stack") as running:
        yield running


def test_idle_users_expire_and_active_ones_stay(stack: LocalStack) -> None:
    stack.start_worker()
    scenario = unique("idle")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    idle = [f"{scenario}-idle-{n}" for n in range(8)]
    active = f"{scenario}-active"

    def round_for(users: list[str]) -> set[str]:
        events = [
            event(unique("e"), u, catalog[n % len(catalog)]["item_id"], time.time(), scenario)
            for n, u in enumerate(users)
        ]
        send_events(stack, events)
        return {e["event_id"] for e in events}

    recommendations_for(stack, round_for([*idle, active]))
    assert set(idle) | {active} <= set(latest_states(stack))

    # The active user keeps sending (every IDLE/3 s); the others are quiet.
    started = time.monotonic()

    def idle_ones_gone() -> bool:
        if time.monotonic() - started > IDLE / 3:
            recommendations_for(stack, round_for([active]))
        states = latest_states(stack)
        return not set(idle) & set(states)

    wait_until(idle_ones_gone, timeout=90, what="the idle users' states to expire")
    states = latest_states(stack)
    assert active in states and states[active]["events"] >= 2  # never expired: it counts on
    assert time.monotonic() - started >= IDLE * 0.5  # not removed before they were idle

    # An expired user who comes back starts over (a new user's state).
    recommendations_for(stack, round_for([idle[0]]))
    assert latest_states(stack)[idle[0]]["events"] == 1
