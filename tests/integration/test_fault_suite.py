"""The fault suite: three workers on a three-node Ray cluster (a head and two serving
nodes, joined as an operator joins them, token auth on), online training on, and a
20,000-event replay per fault: a worker SIGKILLed every 10 s and restarted; the broker
SIGSTOPped for 30 s; the catalog writer, the encoder, the trainer and a recommender (with
the catalog replica in its process) killed in turn (their processes SIGKILLed: Ray
restarts them); a serving
node removed. Each run prints a row of docs/RELIABILITY.md's table and asserts what must
hold: nothing lost, nothing applied twice, no dead letter (every record is good).

Slow (about 2 minutes a fault on 2 cores), so not in ``make test``: ``make test-long`` runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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
from tooling.local import LocalStack, RayNode, local_stack, ray_head, ray_node
from tooling.processes import actor_pids, ancestors

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.long]

WORKERS = 3
PARTITIONS = 6
EVENTS = 20_000
USERS = 500
SERVING = {"serving": 3.0}  # each serving node can host every recommender
STATES_SETTLE_S = 120.0  # how long the users' states may take to reach the changelog


@dataclass
class Suite:
    stack: LocalStack
    head: RayNode
    nodes: list[RayNode]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    root = tmp_path_factory.mktemp("fault-suite")  # logs stay here for a failed run
    with ray_head(num_cpus=3, log_path=root / "ray-head.log") as head:
        nodes = [
            ray_node(head.address, 1, SERVING, log_path=root / f"ray-node-{n}.log")
            for n in range(2)
        ]
        env = {
            "STREAMREC_RAY__ADDRESS": head.address,
            "STREAMREC_RECOMMEND__RESOURCES": '{"serving": 1}',
            "STREAMREC_TRAINING__MODE": "online",
            "STREAMREC_TRAINING__TRAIN_EVERY_SAMPLES": "4000",
            "STREAMREC_TRAINING__STEPS_PER_ROUND": "3",
        }
        try:
            with local_stack(partitions=PARTITIONS, env=env, workdir=root / "stack") as stack:
                suite = Suite(stack, head, nodes)
                suite.workers = stack.start_workers(range(WORKERS))
                yield suite
        finally:
            for node in nodes:
                node.stop()


class Replay:
    """A 20k-event stream over its own users and items, sent at once."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        self.stack = stack
        scenario = unique(name)
        self.items = [
            item(f"{scenario}-{n}", t, scenario)
            for n, t in enumerate(themes.SPACE + themes.COOKING + themes.GARDEN)
        ]
        send_items(stack, self.items)
        users = [f"{scenario}-u{n}" for n in range(USERS)]
        self.events = [
            event(
                unique("e"),
                users[(n * 7) % USERS],
                self.items[(n * 11) % len(self.items)]["item_id"],
                float(n),
                scenario,
            )
            for n in range(EVENTS)
        ]
        self.ids = {e["event_id"] for e in self.events}
        send_events(stack, self.events)

    def check(self, fault: str, since: float) -> str:
        """Wait for every event, assert what must hold; the row for RELIABILITY.md."""
        stack = self.stack
        recs = recommendations_for(stack, self.ids, timeout=900)
        recovered = time.monotonic() - since
        lost = self.ids - set(recs)
        assert not lost, f"{fault}: lost {len(lost)} (logs in {stack.workdir})"
        letters = read(stack, stack.kafka.topics.dead_letters, lambda _: False, timeout=2)
        mine = [d for d in letters if d.value.get("event_id") in self.ids]
        assert not mine, f"{fault}: dead letters {[d.value['error'] for d in mine][:3]}"
        sent = events_per_user(self.events)
        # A batch's recommendations are delivered before its state writes are confirmed
        # (`streams.agents.serve_held`), so the last batches' changelog records can still
        # be on their way when the last recommendation is read: read it again until the
        # counts match or STATES_SETTLE_S has passed (a state really lost never arrives).
        first_read = time.monotonic()
        short_reads = 0
        while True:
            states = latest_states(stack)
            got = {u: states.get(u, {}).get("events", 0) for u in sent}
            wrong = {u: (got[u], n) for u, n in sent.items() if got[u] != n}
            if not wrong or time.monotonic() - first_read > STATES_SETTLE_S:
                break
            short_reads += 1
            time.sleep(5)
        assert not wrong, f"{fault}: state counts (got, sent) {dict(list(wrong.items())[:5])}"
        settled = time.monotonic() - first_read
        print(f"{fault}: states matched after {settled:.1f} s ({short_reads} short reads)")
        row = fault_report(fault, self.events, recs, mine, states, recovered)
        print(row)
        return row


def cluster_pids(suite: Suite) -> list[int]:
    """The suite's own `ray start` processes (not another Ray on this machine)."""
    return [suite.head.process.pid, *(node.process.pid for node in suite.nodes)]


def kill_actor(suite: Suite, class_name: str) -> None:
    pids = actor_pids(class_name, under=cluster_pids(suite))
    assert pids, f"no {class_name} actor process to kill"
    os.kill(pids[0], signal.SIGKILL)


def wait_until_mid_stream(replay: Replay, at_least: int = 2000) -> None:
    wait_served(replay.stack, replay.ids, at_least=at_least, timeout=300)


def every_worker_ready(suite: Suite) -> None:
    for index, proc in enumerate(suite.workers):
        suite.stack.wait_ready(index, proc, timeout=300)


def test_a_worker_sigkilled_every_10_s_and_restarted(suite: Suite) -> None:
    replay = Replay(suite.stack, "kills")
    wait_until_mid_stream(replay)
    last_kill = time.monotonic()
    for n in range(4):
        index = n % WORKERS
        suite.stack.kill_worker(suite.workers[index])
        suite.workers[index] = suite.stack.launch_worker(index)
        last_kill = time.monotonic()
        time.sleep(10)
    every_worker_ready(suite)
    replay.check("a worker SIGKILLed every 10 s and restarted (4 kills)", last_kill)


def test_a_30_second_broker_outage(suite: Suite) -> None:
    replay = Replay(suite.stack, "outage")
    wait_until_mid_stream(replay)
    broker = suite.stack.broker.process.pid
    os.kill(broker, signal.SIGSTOP)
    time.sleep(30)
    os.kill(broker, signal.SIGCONT)
    replay.check("broker SIGSTOP 30 s, then SIGCONT", time.monotonic())


# The recommenders read replicas in their own processes (STREAMREC_RECOMMEND__REPLICA,
# default "own"): killing a Recommender kills its replica; test_actor_restart kills a
# node's shared replica actor.
ACTORS = ["Catalog", "TextEncoder", "TrainerService", "Recommender"]


def test_each_actor_killed_in_turn(suite: Suite) -> None:
    replay = Replay(suite.stack, "actors")
    wait_until_mid_stream(replay)
    killed = time.monotonic()
    for name in ACTORS:
        kill_actor(suite, name)
        killed = time.monotonic()
        time.sleep(3)
    replay.check(
        "catalog, encoder, trainer, recommender (with its replica) SIGKILLed in turn", killed
    )
    for proc in suite.workers:
        assert proc.poll() is None, "a worker died"


def test_a_serving_node_removed(suite: Suite) -> None:
    replay = Replay(suite.stack, "node")
    wait_until_mid_stream(replay)
    busy = _node_with_recommenders(suite)
    busy.kill()
    removed = time.monotonic()
    replay.check("a serving Ray node removed (its recommenders move)", removed)


def _node_with_recommenders(suite: Suite) -> RayNode:
    """The serving node that runs a recommender (its ``ray start`` is an ancestor of the
    recommender's process: ray start -> raylet -> worker)."""
    pids = actor_pids("Recommender", under=cluster_pids(suite))
    for node in suite.nodes:
        if any(node.process.pid in ancestors(pid) for pid in pids):
            return node
    raise AssertionError(f"no serving node runs a recommender (pids {pids})")
