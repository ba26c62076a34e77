"""What one exact search with the user's history excluded costs, per engine.

    python -m tooling.search_bench [--items 1682,20000] [--excluded 200]

For each catalog size (random unit vectors, 384-d), 100 queries a batch with
``--excluded`` ids each, in one process: the in-process Qdrant engine with its
``must_not has_id`` filter, the same engine over-fetching k + excluded hits with no
filter, and the replicas' `MatrixIndex`. Median of 5 batches, per query.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.store import ItemPoint, SearchRequest, open_store
from workers.store.matrix import MatrixIndex

DIM = 384
QUERIES = 100


def _per_query_ms(
    search: Callable[[list[SearchRequest]], Any], asked: list[SearchRequest]
) -> float:
    search(asked)  # warm
    spent = []
    for _ in range(5):
        started = time.perf_counter()
        search(asked)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) / len(asked) * 1e3


def measure(items: int, excluded: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((items, DIM)).astype(np.float32)
    ids = [f"i{n}" for n in range(items)]
    points = [ItemPoint(ids[n], "default", "", vectors[n], vectors[n]) for n in range(items)]
    queries = rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    history = [list(rng.choice(ids, size=excluded, replace=False)) for _ in range(QUERIES)]
    filtered = [
        SearchRequest(vector=q, k=10, exclude=h, exact=True)
        for q, h in zip(queries, history, strict=True)
    ]
    over = [SearchRequest(vector=q, k=10 + excluded, exact=True) for q in queries]
    with tempfile.TemporaryDirectory(prefix="streamrec-search-") as tmp:
        engine = open_store(f"edge:{tmp}", dim=DIM)
        for first in range(0, items, 1000):
            engine.upsert(points[first : first + 1000])
        engine_filtered = _per_query_ms(engine.search, filtered)
        engine_over = _per_query_ms(engine.search, over)
        engine.close()
    index = MatrixIndex(DIM, capacity=items)
    index.upsert(points)
    return {
        "items": items,
        "engine_has_id_ms": round(engine_filtered, 3),
        "engine_overfetch_ms": round(engine_over, 3),
        "matrix_ms": round(_per_query_ms(index.search, filtered), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1682,20000")
    parser.add_argument("--excluded", type=int, default=200)
    args = parser.parse_args()
    print(
        "| items | engine, has_id filter | engine, over-fetch | matrix index |\n|---|---|---|---|"
    )
    for items in (int(n) for n in args.items.split(",")):
        row = measure(items, args.excluded)
        print(
            f"| {items:,} | {row['engine_has_id_ms']} ms | {row['engine_overfetch_ms']} ms "
            f"| {row['matrix_ms']} ms |",
            flush=True,
        )


if __name__ == "__main__":
    main()
