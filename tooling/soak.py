"""`streamrec soak`: the pipeline at a steady event rate for a long time; is memory flat?

    local stack (broker + one worker, as `streamrec bench`) ──► catalog indexed
    producer thread: dataset events in a loop, fresh event ids, ``rate`` per second
    every ``sample_every`` s: RSS of the worker, each Ray actor class, the broker
                              + events sent, the worker's lag on `events`
    ──► a table per minute, a verdict per process (`flatness`), JSON

A process is *flat* when every sample after warm-up lies within ``tolerance`` (10 %)
of its RSS at the end of warm-up (the sample at minute ``warmup``, 10 by default): the
model, the catalog, Ray's object store, the allocator's arenas and the trainer's replay
buffer fill first (100,000 samples by default: about 8.5 minutes at 200 events/s), and
what must not happen afterwards is growth with the number of events.

The embedded broker (Tansu) runs with in-memory storage and no retention: it keeps every
record produced, so its RSS grows with the events by design. It is sampled and judged
like the others, reported with the MB it grew per 1,000 events, and left out of the exit
status, which says whether every streamrec process (the worker and its Ray actors) was
flat. Not part of CI: one hour at 200 events/s is the issue's run (README: "Soak").
"""

from __future__ import annotations

import itertools
import json
import logging
import platform
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tooling.consume import group_lag
from tooling.datasets import Record, load
from tooling.local import LocalStack, local_stack
from tooling.processes import actor_class, descendants, rss_mb
from tooling.produce import kafka_producer, produce

log = logging.getLogger(__name__)

#: Default share of the RSS at the end of warm-up a later sample may differ by.
TOLERANCE = 0.10
#: The process sampled but left out of the exit status (see the module docstring).
BROKER = "broker"


@dataclass(frozen=True)
class SoakOptions:
    dataset: Path
    minutes: int = 60
    rate: float = 200.0
    warmup: int = 10  # minutes; samples before the one at minute ``warmup`` are not judged
    output: Path | None = None
    sample_every: float = 60.0  # seconds between samples (one "minute")

    def __post_init__(self) -> None:
        if self.minutes < 1 or self.rate <= 0 or self.sample_every <= 0:
            raise ValueError("minutes >= 1, rate > 0 and sample_every > 0 are needed")
        if not 0 <= self.warmup < self.minutes:
            raise ValueError(f"warm-up ({self.warmup} min) must be shorter than the run")


@dataclass(frozen=True)
class Flatness:
    """What `flatness` found for one process's RSS series (MB)."""

    baseline_mb: float  # the sample at the end of warm-up
    low_mb: float  # the smallest sample after it (itself included)
    high_mb: float  # the largest
    drift: float  # (last - baseline) / baseline
    flat: bool  # every judged sample within tolerance of the baseline


def flatness(series: Sequence[float], warmup: int, tolerance: float = TOLERANCE) -> Flatness:
    """RSS samples, one per minute from minute 0 -> whether they stayed within
    ``tolerance`` of the sample at minute ``warmup`` from then on (pure).

    A process that disappeared shows 0 MB in its series, which is not flat."""
    if not 0 <= warmup < len(series):
        raise ValueError(f"warm-up {warmup} needs more than {len(series)} samples")
    judged = list(series[warmup:])
    baseline = judged[0]
    low, high = min(judged), max(judged)
    if baseline <= 0:
        return Flatness(baseline, low, high, float("inf"), False)
    flat = (1 - tolerance) * baseline <= low and high <= (1 + tolerance) * baseline
    drift = (judged[-1] - baseline) / baseline
    return Flatness(round(baseline, 1), round(low, 1), round(high, 1), round(drift, 4), flat)


def rss_by_process(worker_pid: int, broker_pid: int) -> dict[str, float]:
    """{"worker" | actor class | "broker": RSS in MB} (several processes of one class
    summed, as `tooling.bench_probes.memory`)."""
    used = {"worker": rss_mb(worker_pid), "broker": rss_mb(broker_pid)}
    for process in descendants(worker_pid):
        name = actor_class(process.title)
        if name is not None:
            used[name] = used.get(name, 0.0) + rss_mb(process.pid)
    return {k: round(v, 1) for k, v in sorted(used.items())}


def looped_events(events: Sequence[Record], stop: threading.Event) -> Iterator[Record]:
    """The dataset's events over and over (fresh event ids, the time of sending), until
    ``stop`` is set."""
    for loop in itertools.count():
        for n, record in enumerate(events):
            if stop.is_set():
                return
            yield {**record, "event_id": f"soak-{loop}-{n}", "ts": time.time()}


class Feeder:
    """A thread producing `looped_events` to the events topic at ``rate`` per second."""

    def __init__(self, stack: LocalStack, events: Sequence[Record], rate: float) -> None:
        self.stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(stack, events, rate), name="soak-feeder", daemon=True
        )

    def _count(self, sent: int) -> None:
        self.sent = sent

    def _run(self, stack: LocalStack, events: Sequence[Record], rate: float) -> None:
        producer = kafka_producer(stack.kafka)
        try:
            records = looped_events(events, self.stop)
            topic = stack.kafka.topics.events
            produce(producer, topic, records, "user_id", rate=rate, on_sent=self._count)
        except BaseException as exc:  # reported by the sampling loop, which stops the run
            self.error = exc
        finally:
            producer.close()

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._thread.join(timeout=60)


def _sample(stack: LocalStack, minute: int, started: float, sent: int) -> dict[str, Any]:
    worker, broker = stack.workers[0].pid, stack.broker.process.pid
    return {
        "minute": minute,
        "elapsed_s": round(time.monotonic() - started, 1),
        "events_sent": sent,
        "events_lag": group_lag(stack.kafka, stack.kafka.topics.events),
        "rss_mb": rss_by_process(worker, broker),
        "users_store_mb": users_store_mb(stack),
    }


def users_store_mb(stack: LocalStack) -> dict[str, float]:
    """What the worker's users-table RocksDB holds in memory, by part (its metrics), MB;
    empty when the endpoint does not answer."""
    try:
        samples = stack.scrape(0)
    except OSError as exc:
        log.warning("soak: no metrics from the worker (%s)", exc)
        return {}
    return {
        dict(labels)["part"]: round(value / 1e6, 1)
        for (name, labels), value in samples.items()
        if name == "streamrec_users_store_bytes"
    }


def run_soak(options: SoakOptions) -> int:
    """Run it; 0 when every streamrec process stayed flat after warm-up, 1 otherwise."""
    console = Console(width=130)
    data = load(options.dataset)
    console.rule(
        f"[bold]streamrec soak: {data.name}, {options.rate:g} events/s for "
        f"{options.minutes} min (warm-up {options.warmup} min)"
    )
    samples: list[dict[str, Any]] = []
    with local_stack(partitions=2) as stack:
        stack.start_worker()
        producer = kafka_producer(stack.kafka)
        produce(producer, stack.kafka.topics.items, data.items, "item_id")
        producer.close()
        stack.wait_consumed(stack.kafka.topics.items, interval=0.5)
        console.print(f"catalog: {len(data.items)} items indexed")
        started = time.monotonic()
        with Feeder(stack, data.events, options.rate) as feeder:
            for minute in range(options.minutes + 1):
                wake = started + minute * options.sample_every
                time.sleep(max(0.0, wake - time.monotonic()))
                if feeder.error is not None or stack.workers[0].poll() is not None:
                    raise RuntimeError(
                        f"the run broke at minute {minute}: feeder {feeder.error!r}; "
                        f"worker log: {stack.log_tail()}"
                    )
                samples.append(_sample(stack, minute, started, feeder.sent))
                console.print(_row_text(samples[-1]))
    results = summarize(options, data.name, samples)
    _print(console, results)
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(json.dumps(results, indent=2))
        console.print(f"written to {options.output}")
    return 0 if results["streamrec_flat"] else 1


def summarize(options: SoakOptions, dataset: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({name for s in samples for name in s["rss_mb"]})
    series = {n: [float(s["rss_mb"].get(n, 0.0)) for s in samples] for n in names}
    verdict = {n: asdict(flatness(values, options.warmup)) for n, values in series.items()}
    seconds = samples[-1]["elapsed_s"] - samples[0]["elapsed_s"] if len(samples) > 1 else 0.0
    return {
        "dataset": dataset,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "minutes": options.minutes,
        "target_rate": options.rate,
        "achieved_rate": round(samples[-1]["events_sent"] / seconds, 1) if seconds else 0.0,
        "warmup_minutes": options.warmup,
        "tolerance": TOLERANCE,
        "samples": samples,
        "verdict": verdict,
        "streamrec_flat": all(v["flat"] for n, v in verdict.items() if n != BROKER),
        "broker_mb_per_1k_events": _growth_per_1k(samples, BROKER, options.warmup),
    }


def _growth_per_1k(samples: list[dict[str, Any]], name: str, warmup: int) -> float | None:
    """MB ``name`` grew per 1,000 events sent after warm-up (None: no events then)."""
    first, last = samples[warmup], samples[-1]
    events = last["events_sent"] - first["events_sent"]
    if events <= 0 or name not in first["rss_mb"] or name not in last["rss_mb"]:
        return None
    return round(float((last["rss_mb"][name] - first["rss_mb"][name]) * 1000.0 / events), 3)


def _row_text(sample: dict[str, Any]) -> str:
    rss = ", ".join(f"{k} {v:.0f}" for k, v in sample["rss_mb"].items())
    store = " + ".join(f"{k} {v:.1f}" for k, v in sample.get("users_store_mb", {}).items())
    return (
        f"minute {sample['minute']:>3}: {sample['events_sent']} events sent, "
        f"lag {sample['events_lag']}; RSS MB: {rss}"
        + (f"; users' RocksDB MB: {store}" if store else "")
    )


def _print(console: Console, results: dict[str, Any]) -> None:
    names = list(results["verdict"])
    table = Table(title=f"RSS, MB, per minute ({results['machine']})")
    for column in ["minute", "events sent", "lag", *names]:
        table.add_column(column, justify="right")
    for s in results["samples"]:
        cells = [f"{s['rss_mb'].get(n, 0.0):.0f}" for n in names]
        table.add_row(str(s["minute"]), str(s["events_sent"]), str(s["events_lag"]), *cells)
    console.print(table)
    warmup = results["warmup_minutes"]
    verdict = Table(
        title=f"flat after warm-up: every sample from minute {warmup} on within "
        f"{results['tolerance']:.0%} of the one at minute {warmup}"
    )
    for column in ("process", "baseline MB", "low MB", "high MB", "drift", "flat"):
        verdict.add_column(column, justify="right")
    for name, v in results["verdict"].items():
        verdict.add_row(
            name,
            f"{v['baseline_mb']:.0f}",
            f"{v['low_mb']:.0f}",
            f"{v['high_mb']:.0f}",
            f"{v['drift']:+.1%}",
            "yes" if v["flat"] else "NO",
        )
    console.print(verdict)
    console.print(
        f"events/s achieved: {results['achieved_rate']} (target {results['target_rate']})"
    )
    console.print(
        f"broker (in-memory storage, keeps every record): "
        f"{results['broker_mb_per_1k_events']} MB per 1,000 events after warm-up; "
        f"not in the exit status"
    )
    flat = "yes" if results["streamrec_flat"] else "NO"
    console.print(f"every streamrec process flat after warm-up: {flat}")
