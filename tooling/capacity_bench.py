"""What the cluster-wide actors can take: the catalog writer and the trainer.

    python -m tooling.capacity_bench [--items 20000] [--calls 2000]

Both are one actor each per cluster, off the per-event path; this measures, through
real Ray actor calls on a local Ray (one call at a time, as their callers make them):
1. the catalog writer's answer to a replica's poll when nothing changed (the steady
   state: each node's replica polls every ``STREAMREC_STORE__SYNC_INTERVAL``), and when
   100 items were indexed since;
2. the catalog writer indexing items (the language model excluded: vectors given);
3. the trainer taking samples (``add``: queued for its background thread).
Capacities are calls (or items, samples) per second, from the median call time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray

from workers.actors import CatalogActor, RemoteCatalog, TrainerActor
from workers.catalog import CatalogItem
from workers.config import AdapterStoreConfig, StoreConfig
from workers.training import Sample, TrainingConfig

DIM = 384


def _median_s(call: Callable[[], Any], times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def _items(first: int, count: int) -> tuple[list[CatalogItem], np.ndarray]:
    rng = np.random.default_rng(first)
    items = [CatalogItem(f"item-{n}", f"text {n}", "bench") for n in range(first, first + count)]
    return items, rng.standard_normal((count, DIM)).astype(np.float32)


def run(items: int, calls: int, directory: Path) -> list[tuple[str, str, str]]:
    """[(what, median per call, capacity)]."""
    store = StoreConfig(url=f"edge:{directory / 'qdrant'}")
    catalog = CatalogActor.remote(store, DIM, AdapterStoreConfig(path=directory / "adapters"))
    rows = []
    batch = 500
    started = time.perf_counter()
    for first in range(0, items, batch):
        ray.get(catalog.index.remote(*_items(first, batch)))
    took = time.perf_counter() - started
    rows.append(
        (
            "catalog: index (batches of 500)",
            f"{took / (items / batch) * 1e3:.1f} ms",
            f"{items / took:,.0f} items/s",
        )
    )

    cursor = ray.get(catalog.changes_since.remote(None)).cursor
    idle = _median_s(lambda: ray.get(catalog.changes_since.remote(cursor)), calls)
    rows.append(
        (
            "catalog: a replica's poll, nothing new",
            f"{idle * 1e3:.2f} ms",
            f"{1 / idle:,.0f} polls/s = {0.1 / idle:,.0f} nodes at 0.1 s",
        )
    )

    spent: list[float] = []
    for n in range(min(calls, 200)):
        ray.get(catalog.index.remote(*_items(items + 100 * n, 100)))
        started = time.perf_counter()
        cursor = ray.get(catalog.changes_since.remote(cursor)).cursor
        spent.append(time.perf_counter() - started)
    busy = statistics.median(spent)
    rows.append(
        (
            "catalog: a replica's poll, 100 new items",
            f"{busy * 1e3:.2f} ms",
            f"{1 / busy:,.0f} polls/s",
        )
    )

    training = TrainingConfig(train_every_samples=10**9, train_every_seconds=10**9)
    trainer = TrainerActor.remote(training, RemoteCatalog(catalog), DIM)
    samples = [
        Sample(tuple(f"item-{k}" for k in range(20)), f"item-{n}", "bench") for n in range(256)
    ]
    add = _median_s(lambda: ray.get(trainer.add.remote(samples)), calls)
    rows.append(
        ("trainer: add (256 samples a call)", f"{add * 1e3:.2f} ms", f"{256 / add:,.0f} samples/s")
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="streamrec-capacity-") as tmp:
            rows = run(args.items, args.calls, Path(tmp))
    finally:
        ray.shutdown()
    print("| singleton call | median time | capacity |\n|---|---|---|")
    for what, median, capacity in rows:
        print(f"| {what} | {median} | {capacity} |")


if __name__ == "__main__":
    main()
