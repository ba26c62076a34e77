"""What one recommend call costs in-process: the user math and the search, no Ray.

    python -m tooling.recommend_bench [--dataset ../shared/data/ml-100k] [--events 20000]
                                      [--batch 16,256]

A `Recommender` over a `MatrixIndex` of the dataset's items (random unit vectors, 384-d:
the cost does not depend on what they hold), at the frozen model, serves the dataset's
events in time order, ``--batch`` at a time, keeping the users' states as a worker does;
one BLAS thread, as a replica runs (`STREAMREC_STORE__SEARCH_THREADS`). Reported per
batch size: milliseconds per event in all, and the median call. To compare two versions
of the code, run it from each checkout in turn (PYTHONPATH) on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from tooling.datasets import load
from workers.config import RecommendConfig
from workers.model import Vector
from workers.recommend_io import EventIn, UserState
from workers.recommender import Recommender
from workers.store.base import ItemPoint, SearchRequest
from workers.store.matrix import MatrixIndex
from workers.wire import HitLists, VectorMap

DIM = 384


class NoText:
    """The events carry no text: nothing is encoded."""

    def encode(self, texts: Sequence[str]) -> Vector:
        raise AssertionError("the bench's events have no text")


class IndexCatalog:
    """A catalog at version 0 over one `MatrixIndex` (what a replica serves from)."""

    def __init__(self, index: MatrixIndex) -> None:
        self.index = index

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, VectorMap]:
        return 0, self.index.vectors(item_ids)

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, HitLists]:
        return 0, self.index.search(requests)

    def adapter(self, version: int) -> None:
        raise AssertionError(f"the bench's catalog stays at version 0, not {version}")


def measure(
    items: Sequence[Mapping[str, object]], events: list[EventIn], batch: int
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    index = MatrixIndex(DIM, capacity=len(items))
    vectors = rng.standard_normal((len(items), DIM)).astype(np.float32)
    index.upsert(
        [
            ItemPoint(str(it["item_id"]), "default", "", v, v)
            for it, v in zip(items, vectors, strict=True)
        ]
    )
    recommender = Recommender(
        RecommendConfig(top_k=10, exact_search=True),
        IndexCatalog(index),
        NoText(),
        dim=DIM,
    )
    states: dict[str, UserState] = {}
    spent = []
    with threadpool_limits(1):
        for first in range(0, len(events), batch):
            part = events[first : first + batch]
            given = {e.user_id: states.get(e.user_id) for e in part}
            started = time.perf_counter()
            served = recommender.recommend(part, given)
            spent.append(time.perf_counter() - started)
            states.update(served.states)
    return {
        "batch": batch,
        "ms_per_event": round(sum(spent) / len(events) * 1e3, 4),
        "median_call_ms": round(statistics.median(spent) * 1e3, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", default="16,256")
    args = parser.parse_args()
    data = load(args.dataset)
    events = [
        EventIn(str(e["event_id"]), str(e["user_id"]), str(e["item_id"]), "default")
        for e in data.events[: args.events]
    ]
    print("| batch | ms per event | median call, ms |\n|---|---|---|")
    for batch in (int(b) for b in args.batch.split(",")):
        row = measure(data.items, events, batch)
        print(f"| {row['batch']} | {row['ms_per_event']} | {row['median_call_ms']} |")


if __name__ == "__main__":
    main()
