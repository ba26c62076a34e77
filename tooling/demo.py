"""`streamrec demo`: the whole pipeline on embedded defaults, on real MovieLens data.

Starts a broker and a worker (local Ray, the embedded language model, the in-process
Qdrant engine), produces a catalog and a time-ordered event stream with a plain Kafka
producer (plus two malformed records), reads the recommendations with a plain Kafka
consumer, and prints what came out. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tooling.consume import Received, TopicReader
from tooling.datasets import Dataset, Record, load_ml_latest
from tooling.evaluation.latency import PERCENTILES_NOTE, percentile
from tooling.local import local_stack
from tooling.produce import kafka_producer, produce
from tooling.progress import progress_bar

MALFORMED = [b"{not json", b'{"user_id": "", "item_id": "1", "ts": 1.0}']


@dataclass(frozen=True)
class DemoOptions:
    users: int = 24
    events_per_user: int = 40
    min_ratings: int = 5
    show: int = 3


def shipped_dataset() -> Path:
    """The MovieLens latest-small copy shipped with streamrec (see its README.txt)."""
    return Path(str(resources.files("tooling") / "resources" / "ml-latest-small"))


def demo_slice(data: Dataset, opts: DemoOptions) -> tuple[list[Record], list[Record]]:
    """(catalog, events): movies with >= min_ratings ratings; the first events_per_user
    catalog events of the first ``users`` users having that many, merged in time order."""
    counts = Counter(e["item_id"] for e in data.events)
    catalog = [i for i in data.items if counts[i["item_id"]] >= opts.min_ratings]
    known = {i["item_id"] for i in catalog}
    per_user: dict[str, list[Record]] = defaultdict(list)
    for event in data.events:  # time ordered
        if event["item_id"] in known:
            per_user[event["user_id"]].append(event)
    chosen = sorted(
        (u for u, evs in per_user.items() if len(evs) >= opts.events_per_user), key=int
    )[: opts.users]
    events = [e for u in chosen for e in per_user[u][: opts.events_per_user]]
    return catalog, sorted(events, key=lambda e: e["ts"])


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    console = console or Console()
    data = load_ml_latest(shipped_dataset())
    catalog, events = demo_slice(data, opts)
    titles = data.titles()
    console.rule("[bold]streamrec demo")
    console.print(
        f"MovieLens latest-small: catalog of {len(catalog)} movies, "
        f"{len(events)} events of {opts.users} users (+{len(MALFORMED)} malformed records)"
    )
    with local_stack(partitions=2) as stack:
        with console.status("starting a worker: local Ray, language model, Qdrant engine ..."):
            t0 = time.monotonic()
            stack.start_worker()
        console.print(
            f"worker ready in {time.monotonic() - t0:.1f}s (broker {stack.broker.bootstrap})"
        )
        producer = kafka_producer(stack.kafka)
        topics = stack.kafka.topics
        with progress_bar(console) as progress:
            task = progress.add_task("catalog: encode + index", total=len(catalog))
            produce(producer, topics.items, catalog, "item_id")
            stack.wait_consumed(
                topics.items, lambda lag: progress.update(task, completed=len(catalog) - lag)
            )
            progress.update(task, completed=len(catalog))

        with (
            TopicReader(stack.kafka, [topics.recommendations, topics.dead_letters]) as reader,
            progress_bar(console) as progress,
        ):
            task = progress.add_task("events -> recommendations", total=len(events))
            started = time.time()
            for bad in MALFORMED:
                producer.send(topics.events, key=b"demo", value=bad)
            produce(producer, topics.events, events, "user_id")
            producer.close()

            def done(seen: list[Received]) -> bool:
                recs = sum(1 for r in seen if r.topic == topics.recommendations)
                return recs >= len(events) and len(seen) >= len(events) + len(MALFORMED)

            received = reader.read_until(
                done,
                timeout=300,
                on_batch=lambda b: progress.advance(
                    task, sum(1 for r in b if r.topic == topics.recommendations)
                ),
            )
            elapsed = time.time() - started
    recs = [r for r in received if r.topic == topics.recommendations]
    dead = [r for r in received if r.topic == topics.dead_letters]
    _show_users(console, events, recs, titles, opts.show)
    _summary(console, len(events), recs, dead, elapsed)
    return 0 if len(recs) >= len(events) and len(dead) == len(MALFORMED) else 1


def _show_users(
    console: Console, events: list[Record], recs: list[Received], titles: dict[str, str], n: int
) -> None:
    history: dict[str, list[str]] = defaultdict(list)
    for e in events:
        history[e["user_id"]].append(e["item_id"])
    last = {r.value["user_id"]: r.value for r in recs}
    for user in sorted(history, key=lambda u: -len(history[u]))[:n]:
        table = Table(title=f"user {user}", show_lines=False, expand=True)
        table.add_column(f"recently watched (last 8 of {len(history[user])})")
        table.add_column("recommended now (top 10)")
        table.add_column("score", justify="right")
        watched = [titles.get(i, i) for i in history[user][-8:]][::-1]
        rec_items = last.get(user, {}).get("items", [])[:10]
        for row in range(max(len(watched), len(rec_items))):
            w = watched[row] if row < len(watched) else ""
            r = rec_items[row] if row < len(rec_items) else None
            table.add_row(
                w,
                titles.get(r["item_id"], r["item_id"]) if r else "",
                f"{r['score']:.3f}" if r else "",
            )
        console.print(table)


def _summary(
    console: Console, n_events: int, recs: list[Received], dead: list[Received], elapsed: float
) -> None:
    latencies = [r.value["latency_ms"] for r in recs]
    table = Table(title="summary", show_header=False)
    table.add_row("events in", str(n_events + len(MALFORMED)))
    table.add_row("recommendations out", str(len(recs)))
    table.add_row("dead letters", f"{len(dead)}: " + "; ".join(d.value["error"][:60] for d in dead))
    table.add_row("throughput", f"{len(recs) / elapsed:.0f} events/s ({elapsed:.1f}s)")
    table.add_row(
        f"latency p50 / p99 ({PERCENTILES_NOTE})",
        (
            f"{percentile(latencies, 50):.0f} ms / {percentile(latencies, 99):.0f} ms"
            f" (mean {statistics.fmean(latencies):.0f} ms)"
        )
        if latencies
        else "no recommendations",
    )
    console.print(table)
