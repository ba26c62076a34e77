"""What the users table's RocksDB holds in memory, per option set, without a worker.

    python -m tooling.rocksdb_memory [--writes 1500000] [--partitions 4] [--options 8,2,8]

Opens ``--partitions`` rocksdict databases with Faust's own `RocksDBOptions` (the class
the users table's store uses), either Faust's defaults (``--options default``) or
``W,N,C`` (write buffer MiB, write buffers, block cache MiB), then overwrites 943 users'
states (~6 KB, as `streams.user_state.encode_state` writes a user with a full history and
dedup window) ``--writes`` times, a get then a put each, as the worker does. Every
``--every`` writes: this process's RSS and what RocksDB says its memtables and block
caches hold. One option set per run (a fresh process): RSS does not shrink back.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from faust.stores.rocksdb import RocksDBOptions

from streams.app import partition_of
from streams.user_state import encode_state
from workers.recommend_io import UserState

MIB = 1024 * 1024
USERS = 943  # ML-100K's, as the soak
ITEMS = 1682


def rss_mb() -> float:
    """This process's resident set size, MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def parse_options(text: str) -> dict[str, Any]:
    """``default`` -> {} (Faust's defaults); ``W,N,C`` -> RocksDBOptions keywords."""
    if text == "default":
        return {}
    write_buffer, buffers, cache = (int(x) for x in text.split(","))
    return {
        "write_buffer_size": write_buffer * MIB,
        "max_write_buffer_number": buffers,
        "block_cache_size": cache * MIB,
    }


def state_values(count: int, seed: int = 0) -> list[bytes]:
    """``count`` JSON user states with 200 history items and 100 recent event ids."""
    rng = np.random.default_rng(seed)
    values = []
    for n in range(count):
        state = UserState(
            history=[str(1 + (n + i) % ITEMS) for i in range(200)],
            weights=[1.0] * 200,
            recent_events=[f"soak-{n}-{i}" for i in range(100)],
            vector=rng.standard_normal(384).astype(np.float32),
            events=1000 + n,
            version=3,
        )
        values.append(encode_state(state, seen=time.time()))
    return values


def _sum_property(dbs: list[Any], name: str) -> float:
    return sum(db.property_int_value(name) or 0 for db in dbs) / MIB


def run(writes: int, partitions: int, options: dict[str, Any], every: int) -> None:
    rocks = RocksDBOptions(**options)
    values = state_values(64)
    keys = [f"user-{u}".encode() for u in range(USERS)]
    pick = random.Random(0)
    print(f"{partitions} databases, {options or 'Faust defaults'}, ~{len(values[0])} B a state")
    with tempfile.TemporaryDirectory(prefix="rocksdb-memory-") as tmp:
        dbs = [rocks.open(Path(tmp) / f"users-{p}.db") for p in range(partitions)]
        try:
            base = rss_mb()
            for n in range(1, writes + 1):
                key = pick.choice(keys)
                db = dbs[partition_of(key, partitions)]
                db.get(key)
                db.put(key, values[n % len(values)])
                if n % every == 0:
                    memtables = _sum_property(dbs, "rocksdb.cur-size-all-mem-tables")
                    cache = _sum_property(dbs, "rocksdb.block-cache-usage")
                    print(
                        f"{n:>9} writes: RSS +{rss_mb() - base:6.1f} MB, memtables "
                        f"{memtables:6.1f} MiB, block caches {cache:6.1f} MiB",
                        flush=True,
                    )
        finally:
            for db in dbs:
                db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1_500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--options", default="8,2,8", help="'default' or W,N,C (MiB, n, MiB)")
    parser.add_argument("--every", type=int, default=100_000)
    args = parser.parse_args()
    run(args.writes, args.partitions, parse_options(args.options), args.every)


if __name__ == "__main__":
    main()
