"""Memory and hot-swap pause of the catalog actors at 1.7k, 10k and 100k items.

    python -m tooling.scale_bench [--dataset ../shared/data/ml-100k] [--sizes 1682,10000,100000]

Through real actors on a local Ray (no Kafka): for each size, a fresh catalog writer
indexes that many items whose texts are the dataset's real item texts (repeated with
distinct ids past the dataset's own count; each repeat's language-model vector is its
text's, with a little noise so that no two items are the same), a catalog replica
copies them, and the RSS of both processes is read. At the largest size, a reader
searches the replica without pause (16 queries a call, 50 excluded ids each, as a
recommender does) while the writer publishes a new model version: every item is
re-projected and the replica loads the new version aside and swaps it in. Reported:
the call latency p50/p99 before and during the swap; the longest call in each window
and the pause the swap added (its longest call less a normal call's median: how long
serving stood still beyond its own work); and the longest gap between two answers
(which includes one whole call: ~75 ms for 16 exact queries over 100k items on one
core of the project machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import ray

from tooling.datasets import Record, load
from tooling.evaluation.latency import percentile
from tooling.processes import actor_class, descendants, rss_mb
from workers.actors import CatalogActor, RemoteCatalog, ReplicaActor
from workers.adapters.io import adapter_files
from workers.catalog import CatalogItem
from workers.config import AdapterStoreConfig, EncoderConfig, StoreConfig
from workers.encoder import TextEncoder
from workers.store import SearchRequest
from workers.trainer_service import new_adapter
from workers.training import TrainingConfig

BATCH = 1000


@dataclass
class Calls:
    """(answered at, seconds taken) of each reader call, in order."""

    done: list[tuple[float, float]]

    def window(self, start: float, end: float) -> list[float]:
        return [took for at, took in self.done if start <= at <= end]

    def longest_gap(self, start: float, end: float) -> float:
        times = [at for at, _ in self.done if start <= at <= end]
        return max((b - a for a, b in pairwise(times)), default=0.0)


def catalog_of(data_items: list[Record], size: int) -> tuple[list[CatalogItem], np.ndarray]:
    """``size`` items with the dataset's texts (repeated) and their real vectors."""
    encoder = TextEncoder(EncoderConfig())
    base = encoder.encode([str(r["text"]) for r in data_items])
    rng = np.random.default_rng(0)
    items, vectors = [], []
    for n in range(size):
        record = data_items[n % len(data_items)]
        rep = n // len(data_items)
        item_id = str(record["item_id"]) if rep == 0 else f"{record['item_id']}#{rep}"
        items.append(CatalogItem(item_id, str(record["text"]), "default"))
        vector = base[n % len(data_items)]
        if rep:
            vector = vector + rng.normal(0.0, 0.01, vector.shape).astype(np.float32)
        vectors.append(vector)
    return items, np.stack(vectors).astype(np.float32)


def _requests(vectors: np.ndarray, ids: list[str], rng: np.random.Generator) -> list[Any]:
    picks = rng.integers(0, len(ids), size=16)
    return [
        SearchRequest(
            vector=vectors[p], k=10, exclude=[ids[int(j)] for j in rng.integers(0, len(ids), 50)]
        )
        for p in picks
    ]


def _wait_copied(replica: Any, item_id: str, version: int, timeout: float = 900.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        at, found = ray.get(replica.lookup.remote([item_id]))
        if at == version and item_id in found:
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"the replica did not copy {item_id} at version {version}")


def measure(
    items: list[CatalogItem], vectors: np.ndarray, directory: Path, swap: bool
) -> dict[str, Any]:
    store = StoreConfig(url=f"edge:{directory / 'qdrant'}")
    catalog = CatalogActor.remote(store, vectors.shape[1], AdapterStoreConfig(path=directory / "a"))
    started = time.monotonic()
    for first in range(0, len(items), BATCH):
        ray.get(catalog.index.remote(items[first : first + BATCH], vectors[first : first + BATCH]))
    indexed = time.monotonic() - started
    replica = ReplicaActor.remote(RemoteCatalog(catalog), vectors.shape[1], store)
    copied = _wait_copied(replica, items[-1].item_id, 0)
    row: dict[str, Any] = {
        "items": len(items),
        "index_items_per_s": round(len(items) / indexed, 1),
        "replica_copy_s": round(copied, 2),
        "rss_mb": _actors_rss(),
    }
    if swap:
        row["hot_swap"] = _hot_swap(catalog, replica, items, vectors)
    for actor in (replica, catalog):
        ray.kill(actor)
    return row


def _actors_rss() -> dict[str, float]:
    """{actor class: RSS MB} of this process's local Ray (not another Ray on the machine)."""
    used: dict[str, float] = {}
    for process in descendants(os.getpid()):
        name = actor_class(process.title)
        if name is not None:
            used[name] = round(used.get(name, 0.0) + rss_mb(process.pid), 1)
    return used


def _hot_swap(catalog: Any, replica: Any, items: list[CatalogItem], vectors: Any) -> dict[str, Any]:
    ids = [i.item_id for i in items]
    calls = Calls([])
    stop = threading.Event()

    def read() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            asked = _requests(vectors, ids, rng)
            started = time.monotonic()
            ray.get(replica.search_at.remote(asked))
            now = time.monotonic()
            calls.done.append((now, now - started))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(10.0)  # the normal window
    swap_start = time.monotonic()
    files = adapter_files(new_adapter(TrainingConfig(), vectors.shape[1]), 1)
    ray.get(catalog.publish.remote(1, files))
    published = time.monotonic()
    _wait_copied(replica, ids[-1], 1)
    swapped = time.monotonic()
    time.sleep(2.0)
    stop.set()
    reader.join()
    normal = calls.window(swap_start - 10.0, swap_start)
    during = calls.window(swap_start, swapped)
    ms = 1000.0
    return {
        "publish_s": round(published - swap_start, 2),
        "replica_swap_s": round(swapped - published, 2),
        "normal_p50_p99_ms": [round(percentile(normal, q) * ms, 2) for q in (50, 99)],
        "swap_p50_p99_ms": [round(percentile(during, q) * ms, 2) for q in (50, 99)],
        "normal_longest_call_ms": round(max(normal, default=0.0) * ms, 1),
        "swap_longest_call_ms": round(max(during, default=0.0) * ms, 1),
        "swap_added_pause_ms": round((max(during, default=0.0) - percentile(normal, 50)) * ms, 1),
        "normal_longest_gap_ms": round(calls.longest_gap(swap_start - 10.0, swap_start) * ms, 1),
        "swap_longest_gap_ms": round(calls.longest_gap(swap_start, swapped) * ms, 1),
        "calls": [len(normal), len(during)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--sizes", default="1682,10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    data = load(args.dataset)
    items, vectors = catalog_of(data.items, max(sizes))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="streamrec-scale-") as tmp:
                row = measure(items[:size], vectors[:size], Path(tmp), swap=size == max(sizes))
            print(row, flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
