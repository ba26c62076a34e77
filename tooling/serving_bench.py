"""The serving chain without Kafka: one recommend call per micro-batch, as a worker makes it.

    python -m tooling.serving_bench [--dataset ../shared/data/ml-100k] [--events 20000]

Through real actors on a local Ray: the catalog writer indexes the dataset's items (their
language-model vectors), a Recommender serves the dataset's events in time order,
``--batch`` at a time, reading its node's catalog replica, and this process plays the
worker's part of the call: it holds the users' states, hands each batch and its users'
states to the recommender and keeps the new states. No broker, no Faust, no training
(zero-shot): what is left is the chain worker -> Recommender -> replica and back, whose
length bounds one worker's rate (BENCHMARKS.md). Reported: events per second through the
chain, the median and p99 call time, and the CPU milliseconds per event of this process,
the Recommender and the replica (read from /proc).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from tooling.bench_probes import cpu_by_process, cpu_ms_per_event
from tooling.datasets import load
from tooling.evaluation.latency import percentile
from tooling.scale_bench import catalog_of
from workers.actors import CatalogActor, NodeCatalog, RecommenderActor
from workers.config import AdapterStoreConfig, EncoderConfig, RecommendConfig, StoreConfig
from workers.encoder import LazyEncoder
from workers.recommend_io import EventIn, Events, UserState, UserStates


def serve(
    recommender: Any, events: list[EventIn], batch: int, states: dict[str, UserState]
) -> dict[str, Any]:
    """Serve ``events`` in batches through ``recommender``, keeping ``states``; the rate,
    call times and CPU."""
    calls: list[float] = []
    me = os.getpid()
    before = cpu_by_process([me], None)
    started = time.perf_counter()
    for first in range(0, len(events), batch):
        part = Events(events[first : first + batch])
        mine = UserStates({e.user_id: states.get(e.user_id) for e in part})
        called = time.perf_counter()
        out = ray.get(recommender.recommend.remote(part, mine))
        calls.append(time.perf_counter() - called)
        states.update(out.states)
    spent = time.perf_counter() - started
    cpu = cpu_ms_per_event(before, cpu_by_process([me], None), len(events))
    return {
        "events": len(events),
        "batch": batch,
        "events_per_s": round(len(events) / spent, 1),
        "call_ms_p50": round(percentile([c * 1000 for c in calls], 50), 1),
        "call_ms_p99": round(percentile([c * 1000 for c in calls], 99), 1),
        "cpu_ms_per_event": {("caller" if k == "worker" else k): v for k, v in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument(
        "--replica", choices=["node", "own"], default="node", help="STREAMREC_RECOMMEND__REPLICA"
    )
    args = parser.parse_args()
    data = load(args.dataset)
    items, vectors = catalog_of(data.items, len(data.items))
    events = [
        EventIn(str(r["event_id"]), str(r["user_id"]), str(r["item_id"]), str(r["scenario"]))
        for r in data.events[: args.warmup + args.events]
    ]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="streamrec-serving-") as tmp:
            store = StoreConfig(url=f"edge:{Path(tmp) / 'qdrant'}")
            dim = vectors.shape[1]
            catalog = CatalogActor.remote(store, dim, AdapterStoreConfig(path=Path(tmp) / "a"))
            ray.get(catalog.index.remote(items, vectors))
            recommender = RecommenderActor.remote(
                RecommendConfig(),
                NodeCatalog(catalog, dim, store, own=args.replica == "own"),
                LazyEncoder(EncoderConfig()),
                dim=dim,
            )
            states: dict[str, UserState] = {}
            serve(recommender, events[: args.warmup], args.batch, states)
            print(serve(recommender, events[args.warmup :], args.batch, states), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
