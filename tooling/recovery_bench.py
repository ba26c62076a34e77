"""How long a worker takes to restore its users table, per table store.

    python -m tooling.recovery_bench [--users 0,100000] [--stores memory://,rocksdb://]

For each store (``memory://``, ``rocksdb://``): a local stack whose users changelog
already holds ``--users`` states (20 history items, a 384-d vector), then
1. first start: a worker starts and must restore every state before it serves a probe
   event (Faust pauses agents until recovery is done);
2. restart: the worker is stopped (SIGTERM) and started again; a new probe is timed.
Each time is from the worker's launch to the probe's recommendation, so it includes the
worker's fixed start (Ray, the model, the group join), reported alone with no users.
The RSS of the worker and of each of its actors is read once the first probe is served.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from streams.user_state import encode_state
from tooling.bench_probes import memory
from tooling.broker import create_topics
from tooling.consume import TopicReader
from tooling.local import LocalStack, local_stack
from tooling.produce import kafka_producer
from workers.recommend_io import UserState


def _fill_changelog(stack: LocalStack, users: int) -> None:
    topic = f"{stack.kafka.app_id}-users-changelog"
    create_topics(stack.kafka, [topic])
    rng = np.random.default_rng(0)
    state = UserState(
        history=[f"item-{k}" for k in range(20)],
        weights=[1.0] * 20,
        recent_events=[f"event-{k}" for k in range(20)],
        vector=rng.standard_normal(384).astype(np.float32),
        events=20,
    )
    value = encode_state(state, seen=time.time())
    producer = kafka_producer(stack.kafka)
    try:
        for n in range(users):
            producer.send(topic, key=f"user-{n}".encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def _served_after_launch(stack: LocalStack, index: int, probe: str) -> float:
    """Launch worker ``index`` with a probe event waiting; seconds until it is served
    (every state restored: Faust holds the agents until then)."""
    event = {"event_id": probe, "user_id": "user-0", "item_id": "item-x", "ts": 1.0}
    producer = kafka_producer(stack.kafka)
    producer.send(stack.kafka.topics.events, key=b"user-0", value=json.dumps(event).encode())
    producer.flush()
    producer.close()
    started = time.monotonic()
    stack.launch_worker(index)
    with TopicReader(stack.kafka, [stack.kafka.topics.recommendations]) as reader:
        seen = reader.read_until(
            lambda got: any(r.value.get("event_id") == probe for r in got), timeout=1800
        )
    if not any(r.value.get("event_id") == probe for r in seen):
        raise TimeoutError(f"probe {probe} not served: {stack.log_tail(index)}")
    return time.monotonic() - started


def measure(store: str, users: int) -> dict[str, Any]:
    env = {"STREAMREC_TABLE_STORE": store, "STREAMREC_TRAINING__MODE": "zero-shot"}
    with local_stack(partitions=2, env=env) as stack:
        _fill_changelog(stack, users)
        first = _served_after_launch(stack, 0, "probe-1")
        used = memory(stack.workers[0].pid)
        stack.stop_worker(stack.workers[0])
        again = _served_after_launch(stack, 0, "probe-2")
    return {
        "store": store,
        "users": users,
        "first_start_s": first,
        "restart_s": again,
        "rss_mb": used,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="0,100000", help="comma-separated user counts")
    parser.add_argument("--stores", default="memory://,rocksdb://", help="comma-separated")
    args = parser.parse_args()
    for store in args.stores.split(","):
        for users in (int(u) for u in args.users.split(",")):
            row = measure(store, users)
            first, again, rss = row["first_start_s"], row["restart_s"], row["rss_mb"]
            actors = ", ".join(f"{k} {v:.0f}" for k, v in rss["actors"].items())
            print(
                f"{store:11} users {users:>7}: first start {first:6.1f} s, restart {again:6.1f} s;"
                f" RSS MB after the first start: worker {rss['worker']:.0f}, {actors}",
                flush=True,
            )


if __name__ == "__main__":
    main()
