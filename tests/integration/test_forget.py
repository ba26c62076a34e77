"""Forgetting a user and deleting an item, end to end: a broker, a real worker (Faust,
Ray, the language model, the Qdrant engine), `streamrec forget` as a process.

* A user with history, forgotten: their state leaves the users table (a tombstone is
  the changelog's last record for them), the trainer drops their samples, and their
  next event is served as a new user's (their old items are no longer excluded).
* An item deleted by a tombstone on `items` (its id as key, a null value): no later
  recommendation lists it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    changelog,
    event,
    item,
    latest_states,
    recommendations_for,
    send,
    send_events,
    send_items,
    unique,
    wait_until,
)
from tooling.consume import group_lag
from tooling.local import LocalStack, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Online training on (the trainer holds the samples to drop), but no round runs
    # during the test: a new model version would reorder what the test compares.
    env = {
        "STREAMREC_TRAINING__TRAIN_EVERY_SECONDS": "3600",
        "STREAMREC_TRAINING__TRAIN_EVERY_SAMPLES": "100000",
    }
    workdir = tmp_path_factory.mktemp("forget") / "stack"
    with local_stack(partitions=2, env=env, workdir=workdir) as running:
        running.start_worker()
        yield running


def changelog_of(stack: LocalStack, user: str) -> list[bytes | None]:
    """Every value the users table's changelog holds for ``user``, oldest first."""
    return [value for key, value in changelog(stack) if key == user]


def forget_command(stack: LocalStack, user: str) -> str:
    """``streamrec forget USER`` as an operator runs it: settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    env["STREAMREC_KAFKA__BROKER"] = stack.broker.url
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "forget", user],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def serve(stack: LocalStack, user: str, items: list[str], scenario: str) -> list[list[str]]:
    """The user's events on ``items``, in order -> the item ids recommended for each."""
    events = [
        event(unique("e"), user, item_id, time.time() + n, scenario)
        for n, item_id in enumerate(items)
    ]
    send_events(stack, events)
    recs = recommendations_for(stack, {e["event_id"] for e in events})
    return [[i["item_id"] for i in recs[e["event_id"]][0].value["items"]] for e in events]


def test_a_forgotten_user_has_no_state_no_samples_and_starts_over(stack: LocalStack) -> None:
    scenario = unique("forget")
    ids = [f"{scenario}-{n}" for n in range(len(themes.SPACE))]
    send_items(stack, [item(i, t, scenario) for i, t in zip(ids, themes.SPACE, strict=True)])
    user, other = unique("user"), unique("other")
    served = serve(stack, user, ids[:5], scenario)
    assert not set(ids[:5]) & set(served[-1])  # the history is excluded while it is kept
    serve(stack, other, ids[:3], scenario)
    before = latest_states(stack)
    assert before[user]["events"] == 5 and before[user]["history"] == ids[:5]

    assert "forget" in forget_command(stack, user)
    wait_until(lambda: user not in latest_states(stack), what="the user's state to go")
    values = changelog_of(stack, user)
    assert values[-1] is None and any(v is not None for v in values)  # a tombstone, last
    assert latest_states(stack)[other]["events"] == 3  # another user keeps theirs
    # The trainer dropped the user's 4 samples (one per event with a history before it).
    wait_until(
        lambda: (
            "forgot 1 users: 1 states removed, 4 training samples dropped"
            in stack.log_tail(lines=100_000)
        ),
        what="the worker to report the forget",
    )

    # Their next event is a new user's: a state of one event, the old items recommended.
    (again,) = serve(stack, user, [ids[7]], scenario)
    state = latest_states(stack)[user]
    assert state["events"] == 1 and state["history"] == [ids[7]]
    assert set(ids[:5]) <= set(again) and ids[7] not in again


def test_a_deleted_item_is_never_recommended_again(stack: LocalStack) -> None:
    scenario = unique("delete")
    ids = [f"{scenario}-{n}" for n in range(len(themes.SPACE))]
    send_items(stack, [item(i, t, scenario) for i, t in zip(ids, themes.SPACE, strict=True)])
    gone = ids[5]
    (first,) = serve(stack, unique("probe"), [ids[0]], scenario)
    assert gone in first and len(first) == len(ids) - 1  # every other item, before the delete

    send(stack, stack.kafka.topics.items, [(gone.encode(), None)])  # the tombstone
    wait_until(lambda: group_lag(stack.kafka, stack.kafka.topics.items) == 0, what="delete")
    # The replicas drop it on their next poll (every 0.1 s): wait for one probe to show it.
    wait_until(
        lambda: gone not in serve(stack, unique("probe"), [ids[0]], scenario)[0],
        what="the delete to reach the replica",
    )
    users = [unique("after") for _ in range(4)]
    # Events on the items around it, and on it (unknown now: a pending item).
    later = [rec for k, u in enumerate(users) for rec in serve(stack, u, ids[k : k + 3], scenario)]
    assert later and all(gone not in rec for rec in later)
    (last,) = serve(stack, unique("probe"), [ids[0]], scenario)
    assert sorted(last) == sorted(i for i in ids if i not in (ids[0], gone))
    assert "Crashed reason" not in stack.log_tail(lines=100_000)


def test_the_forget_command_reports_where_its_record_went(stack: LocalStack) -> None:
    out = forget_command(stack, unique("never-seen"))
    assert f"-> {stack.kafka.topics.events} (partition " in out
    assert stack.workers[0].poll() is None  # a forget of an unknown user harms nothing
