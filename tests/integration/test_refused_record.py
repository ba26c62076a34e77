"""A record the broker refuses for good stops the worker; nothing is committed past it,
and the restarted worker serves it.

The worker's producer is given a request limit under one forward's size
(STREAMREC_KAFKA__MAX_REQUEST_SIZE), as a broker whose message limit is lower than the
records it accepted on `events` plus the by-user wrapping would: an event keyed by
something other than its user is forwarded to the by-user topic, and that forward is
refused, for good. Before, Faust restarted the agent past the failed batch: later events
were served while the committed offset stood still. Now the worker exits with status 1,
the event is still uncommitted, and a worker with the default limit serves it, with the
event produced after it. The catalog agent's batches are held the same way.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.integration import themes
from tests.integration.helpers import (
    event,
    item,
    read,
    recommendations_for,
    send,
    send_items,
    unique,
    wait_until,
)
from tooling.consume import group_lag
from tooling.local import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

LIMIT = "4096"  # bytes per producer request: a 6,000-character event's forward is over it


def _stopped_then_restarted(
    stack: LocalStack, worker: subprocess.Popen[bytes], agent: str, topic: str
) -> None:
    """``agent`` failed on the refused record: the worker exited with status 1, naming
    the error, and neither of the two records produced to ``topic`` was committed; then a
    worker with the default request limit is started."""
    worker.wait(timeout=120)
    log = stack.log_tail(lines=400)
    assert worker.returncode == 1, log
    assert f"agent {agent} failed, stopping this worker" in log, log
    assert "MessageSizeTooLargeError" in log, log
    assert group_lag(stack.kafka, topic) == 2  # nothing committed past it
    del stack.env["STREAMREC_KAFKA__MAX_REQUEST_SIZE"]
    stack.start_worker()


def test_a_forward_refused_for_good_stops_the_worker_and_is_served_after_restart(
    zero_shot_stack: LocalStack,
) -> None:
    stack = zero_shot_stack
    stack.env["STREAMREC_KAFKA__MAX_REQUEST_SIZE"] = LIMIT
    worker = stack.start_worker()
    scenario = unique("refused")
    catalog = [item(f"{scenario}-{n}", t, scenario) for n, t in enumerate(themes.SPACE)]
    send_items(stack, catalog)
    user = f"{scenario}-u"
    big = event(unique("big"), user, catalog[0]["item_id"], 1.0, scenario, text="x " * 3000)
    later = event(unique("later"), user, catalog[1]["item_id"], 2.0, scenario)
    # Keyed by something other than the user: both take the by-user hop.
    send(stack, stack.kafka.topics.events, [(b"not-the-user", big), (b"not-the-user", later)])

    _stopped_then_restarted(stack, worker, "streamrec.ingest", stack.kafka.topics.events)
    served = recommendations_for(stack, {big["event_id"], later["event_id"]})
    assert set(served) == {big["event_id"], later["event_id"]}
    wait_until(
        lambda: group_lag(stack.kafka, stack.kafka.topics.events) == 0, what="events committed"
    )


def test_a_dead_letter_refused_for_good_stops_the_worker_and_its_item_batch_stays(
    zero_shot_stack: LocalStack,
) -> None:
    """The catalog agent's batch is held too: a dead letter over the producer's limit (a
    bad item record's letter keeps 2,048 of its bytes) stops the worker with the batch
    uncommitted, and a worker with the default limit dead-letters it and indexes the
    item after it."""
    stack = zero_shot_stack
    stack.env["STREAMREC_KAFKA__MAX_REQUEST_SIZE"] = "1024"
    worker = stack.start_worker()
    scenario = unique("refused-item")
    good = item(f"{scenario}-0", themes.SPACE[0], scenario)
    send(stack, stack.kafka.topics.items, [(b"bad", b"not json " * 400), (b"good", good)])

    _stopped_then_restarted(stack, worker, "streamrec.catalog", stack.kafka.topics.items)
    wait_until(
        lambda: group_lag(stack.kafka, stack.kafka.topics.items) == 0, what="items committed"
    )
    letters = read(stack, stack.kafka.topics.dead_letters, lambda got: len(got) >= 1)
    assert [r.value["key"] for r in letters] == ["bad"]
