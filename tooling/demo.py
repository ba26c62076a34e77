"""`streamrec demo`: the whole pipeline on embedded defaults, on real MovieLens data.

Starts a broker and a worker (local Ray, the embedded language model, the in-process
Qdrant engine, online training), produces a catalog and a time-ordered event stream at
a steady rate with a plain Kafka producer (plus two malformed records), reads the
recommendations with a plain Kafka consumer and shows, while it runs, the model
version served, the trainer's rounds (accepted by the gate or rejected) and the running
hit rate (each event judged against the list served to its user after their previous
event). At the end: three users of different tastes, what they watched and what they
get now. Every process it starts is stopped at the end.

The demo trains more often than the defaults (a round every ``train_every`` samples or
``train_every_seconds``, with no rest after a round: `TrainingConfig.max_share` 1) so that
a few minutes of stream show versions advancing.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tooling.consume import Received, TopicReader
from tooling.datasets import Dataset, Record, load_ml_latest
from tooling.evaluation.latency import PERCENTILES_NOTE, percentile
from tooling.evaluation.metrics import rank_of
from tooling.local import local_stack
from tooling.produce import kafka_producer, produce
from workers.adapters.rounds import read_rounds

MALFORMED = [b"{not json", b'{"user_id": "", "item_id": "1", "ts": 1.0}']
RECENT = 500  # judged events in the "recent" hit rate


@dataclass(frozen=True)
class DemoOptions:
    users: int = 80
    events_per_user: int = 50
    min_ratings: int = 5
    show: int = 3
    rate: float = 120.0  # events per second produced
    train_every: int = 300  # samples per training round (the default is 1000)
    train_every_seconds: float = 5.0


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


def genre_profile(items: list[str], genres: dict[str, list[str]]) -> dict[str, float]:
    """Share of each genre among ``items``' genres."""
    counts = Counter(g for i in items for g in genres.get(i, []))
    total = sum(counts.values()) or 1
    return {g: n / total for g, n in counts.items()}


def distinct_tastes(
    history: dict[str, list[str]], genres: dict[str, list[str]], n: int
) -> list[str]:
    """``n`` users far apart in genre profile: the first has the most events, each next
    one the largest smallest L1 distance to those already picked."""
    profiles = {u: genre_profile(items, genres) for u, items in history.items()}

    def distance(a: str, b: str) -> float:
        pa, pb = profiles[a], profiles[b]
        return sum(abs(pa.get(g, 0.0) - pb.get(g, 0.0)) for g in set(pa) | set(pb))

    picked = [max(history, key=lambda u: (len(history[u]), u))]
    while len(picked) < min(n, len(history)):
        rest = [u for u in history if u not in picked]
        picked.append(max(rest, key=lambda u: (min(distance(u, p) for p in picked), u)))
    return picked


class Scoreboard:
    """What the live view shows: hits of each event against its user's previous list."""

    def __init__(self, item_of: dict[str, str]) -> None:
        self.item_of = item_of  # event id -> the item of that event
        self.last_list: dict[str, list[str]] = {}
        self.hits = 0
        self.judged = 0
        self.recent: deque[bool] = deque(maxlen=RECENT)
        self.version = 0
        self.recommendations = 0
        self.dead: list[Received] = []
        self.latencies: list[float] = []

    def add(self, rec: Received, dead_topic: str) -> None:
        if rec.topic == dead_topic:
            self.dead.append(rec)
            return
        value = rec.value
        user, item = str(value["user_id"]), self.item_of.get(str(value.get("event_id")), "")
        before = self.last_list.get(user)
        if before is not None:
            hit = rank_of(before, item, 10) is not None
            self.hits += hit
            self.judged += 1
            self.recent.append(hit)
        self.last_list[user] = [str(i["item_id"]) for i in value.get("items", [])]
        self.version = max(self.version, int(value.get("model_version", 0)))
        self.recommendations += 1
        self.latencies.append(float(value.get("latency_ms", 0.0)))


def _view(board: Scoreboard, rounds: list[dict[str, Any]], sent: int, total: int) -> Table:
    table = Table(title="streamrec demo: live", show_header=False, min_width=60)
    accepted = sum(1 for r in rounds if r.get("accepted"))
    table.add_row("events produced / served", f"{sent} / {board.recommendations} of {total}")
    table.add_row("model version served", str(board.version))
    table.add_row(
        "training rounds",
        f"{len(rounds)}: {accepted} went live, {len(rounds) - accepted} rejected by the gate",
    )
    if rounds and rounds[-1].get("candidate_score") is not None:
        last = rounds[-1]
        table.add_row(
            "last gate (NDCG@10 held out)",
            f"candidate {last['candidate_score']:.3f} vs live {last['live_score']:.3f}",
        )
    overall = board.hits / board.judged if board.judged else 0.0
    recent = sum(board.recent) / len(board.recent) if board.recent else 0.0
    table.add_row("hit rate @10, all events", f"{overall:.3f} ({board.judged} judged)")
    table.add_row(f"hit rate @10, last {RECENT}", f"{recent:.3f}")
    return table


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    console = console or Console()
    data = load_ml_latest(shipped_dataset())
    catalog, events = demo_slice(data, opts)
    titles = data.titles()
    genres = {i["item_id"]: list(i.get("attributes", {}).get("genres", [])) for i in data.items}
    console.rule("[bold]streamrec demo")
    console.print(
        f"MovieLens latest-small: catalog of {len(catalog)} movies, {len(events)} events of "
        f"{opts.users} users at {opts.rate:.0f}/s (+{len(MALFORMED)} malformed records); "
        f"a training round every {opts.train_every} samples or {opts.train_every_seconds:.0f} s"
    )
    env = {
        "STREAMREC_TRAINING__TRAIN_EVERY_SAMPLES": str(opts.train_every),
        "STREAMREC_TRAINING__TRAIN_EVERY_SECONDS": str(opts.train_every_seconds),
        "STREAMREC_TRAINING__GATE_SAMPLES": str(opts.train_every),
        "STREAMREC_TRAINING__MAX_SHARE": "1",  # no rest between rounds: a short stream
    }
    board = Scoreboard({str(e["event_id"]): str(e["item_id"]) for e in events})
    with local_stack(partitions=2, env=env) as stack:
        with console.status("starting a worker: local Ray, language model, Qdrant engine ..."):
            t0 = time.monotonic()
            stack.start_worker()
        console.print(
            f"worker ready in {time.monotonic() - t0:.1f}s (broker {stack.broker.bootstrap})"
        )
        producer = kafka_producer(stack.kafka)
        topics = stack.kafka.topics
        with console.status(f"catalog: encoding and indexing {len(catalog)} movies ..."):
            produce(producer, topics.items, catalog, "item_id")
            stack.wait_consumed(topics.items, lambda lag: None)
        adapters = stack.workdir / "adapters"
        sent = [0]

        def feed() -> None:
            for bad in MALFORMED:
                producer.send(topics.events, key=b"demo", value=bad)
            for start in range(0, len(events), 50):
                produce(
                    producer, topics.events, events[start : start + 50], "user_id", rate=opts.rate
                )
                sent[0] = min(len(events), start + 50)

        started = time.time()
        feeder = threading.Thread(target=feed, name="demo-producer", daemon=True)
        feeder.start()
        deadline = time.monotonic() + 300 + len(events) / opts.rate
        with (
            TopicReader(stack.kafka, [topics.recommendations, topics.dead_letters]) as reader,
            Live(console=console, refresh_per_second=4) as live,
        ):
            while time.monotonic() < deadline:
                for rec in reader.poll(0.25):
                    board.add(rec, topics.dead_letters)
                live.update(_view(board, read_rounds(adapters), sent[0], len(events)))
                if board.recommendations >= len(events) and len(board.dead) >= len(MALFORMED):
                    break
            elapsed = time.time() - started
        feeder.join(timeout=10)
        producer.close()
    history: dict[str, list[str]] = defaultdict(list)
    for e in events:
        history[e["user_id"]].append(e["item_id"])
    shown = distinct_tastes(history, genres, opts.show)
    _show_users(console, shown, history, board.last_list, titles, genres)
    _summary(console, len(events), board, elapsed)
    return 0 if board.recommendations >= len(events) and len(board.dead) == len(MALFORMED) else 1


def _show_users(
    console: Console,
    users: list[str],
    history: dict[str, list[str]],
    lists: dict[str, list[str]],
    titles: dict[str, str],
    genres: dict[str, list[str]],
) -> None:
    for user in users:
        top = sorted(genre_profile(history[user], genres).items(), key=lambda kv: -kv[1])[:3]
        taste = ", ".join(f"{g} {share:.0%}" for g, share in top)
        table = Table(title=f"user {user} (watched mostly: {taste})", expand=True)
        table.add_column(f"recently watched (last 8 of {len(history[user])})")
        table.add_column("recommended now (top 10)")
        watched = [titles.get(i, i) for i in history[user][-8:]][::-1]
        recommended = [titles.get(i, i) for i in lists.get(user, [])[:10]]
        for row in range(max(len(watched), len(recommended))):
            table.add_row(
                watched[row] if row < len(watched) else "",
                recommended[row] if row < len(recommended) else "",
            )
        console.print(table)
    shared = set.intersection(*(set(lists.get(u, [])[:10]) for u in users)) if users else set()
    console.print(f"titles recommended to all {len(users)} of these users: {len(shared)} of 10")


def _summary(console: Console, n_events: int, board: Scoreboard, elapsed: float) -> None:
    table = Table(title="summary", show_header=False)
    table.add_row("events in", str(n_events + len(MALFORMED)))
    table.add_row("recommendations out", str(board.recommendations))
    table.add_row(
        "dead letters",
        f"{len(board.dead)}: " + "; ".join(d.value["error"][:60] for d in board.dead),
    )
    table.add_row("model version at the end", str(board.version))
    rate = board.hits / board.judged if board.judged else 0.0
    table.add_row("hit rate @10 (each event vs the list before it)", f"{rate:.3f}")
    table.add_row("throughput", f"{board.recommendations / elapsed:.0f} events/s (paced)")
    lat = board.latencies
    table.add_row(
        f"latency p50 / p99 ({PERCENTILES_NOTE})",
        f"{percentile(lat, 50):.0f} ms / {percentile(lat, 99):.0f} ms"
        f" (mean {statistics.fmean(lat):.0f} ms)"
        if lat
        else "no recommendations",
    )
    console.print(table)
