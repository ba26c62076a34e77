"""Replay a dataset through a real local deployment and collect what it served.

One run: embedded broker + one ``streamrec worker`` (Faust, local Ray, the language
model, Qdrant, the trainer), fed with a plain Kafka producer, read with a plain Kafka
consumer, exactly as a user's application would. Phase 1 streams the training events
in time order (online training on, unless zero-shot); the run then waits until the
trainer has published what it learned; phase 2 streams one probe event per user (their
validation event, marked ``learn: false``, so no probe trains the model), whose
recommendation is ranked by the final model.

**Paced to the trainer** (``RunPlan.pace_every``, the eval's default): phase 1 is produced
in chunks, and once the samples produced reach a round the trainer is due (``N`` =
``train_every_samples`` since its last logged round), the replay waits until every event
produced so far is served and that round is logged. So the trainer learns every ``N``
samples as it does at real-time rates, however fast the machine serves: the rounds a
stream gets, and the versions serving it, no longer depend on how busy the machine was.
A sample is an event whose user has an earlier event in the run (the recommender's rule:
a first event has no history to learn from). The firehose (``pace_every=None``) produces
the whole stream at once and trains as often as the trainer keeps up.

Ids are prefixed with the run's scenario on the wire (``ml-100k:50``), so two datasets
can share one deployment (cross-scenario transfer) without their ids colliding.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tooling.consume import Received, TopicReader
from tooling.datasets import Record
from tooling.local import local_stack
from tooling.produce import kafka_producer, produce
from tooling.progress import progress_bar
from workers.adapters.io import latest_version, published_versions, version_dir
from workers.adapters.rounds import read_rounds


@dataclass(frozen=True)
class Served:
    """One recommendation as the consumer read it (ids without the wire prefix)."""

    items: tuple[str, ...]
    model_version: int
    latency_ms: float


@dataclass
class RunResult:
    name: str
    served: dict[str, Served]  # event_id -> its recommendation
    stream_seconds: float  # phase 1, first event produced -> last recommendation read
    settle_seconds: float  # waiting for the trainer after the stream
    versions: list[int] = field(default_factory=list)  # versions still on disk (pruned)
    final_adapter: Path | None = None  # copy of the newest version (for transfer)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # the gate's decisions
    paced: bool = False  # phase 1 held for each due round (else a firehose)
    stalls: int = 0  # paced: due rounds that did not come within ``RunPlan.stall``
    probe_versions: tuple[int, ...] = ()  # the versions that served the probes (test lists)

    @property
    def published(self) -> int:
        """Versions published over the run: they are numbered 1, 2, ... as they go live,
        so the newest one's number (older ones are pruned from disk as new ones come)."""
        return max(self.versions, default=0)


@dataclass(frozen=True)
class RunPlan:
    name: str
    scenario: str
    items: Sequence[Record]
    train: Sequence[Record]
    probes: Sequence[Record]
    workdir: Path
    env: dict[str, str]
    seed_adapter: Path | None = None  # a published version directory to start from
    settle: float = 10.0  # seconds without a new version before phase 2
    timeout: float = 3600.0
    pace_every: int | None = None  # hold the stream for each due round (N samples); None: firehose
    stall: float = 120.0  # paced: seconds to wait for a due round before going on without it


class Wire:
    """Prefixes ids on the way in and strips them on the way out."""

    def __init__(self, scenario: str) -> None:
        self.prefix = f"{scenario}:"

    def record(self, record: Record, *keys: str) -> Record:
        out = dict(record)
        for key in keys:
            out[key] = self.prefix + str(record[key])
        return out

    def strip(self, wire_id: str) -> str:
        return wire_id[len(self.prefix) :] if wire_id.startswith(self.prefix) else wire_id


def run(plan: RunPlan, console: Console) -> RunResult:
    wire = Wire(plan.scenario)
    items = [wire.record(i, "item_id") for i in plan.items]
    train = [wire.record(e, "item_id", "user_id") for e in plan.train]
    probes = probe_records(wire, plan.probes)
    adapters = plan.workdir / "adapters"
    if plan.workdir.exists():
        shutil.rmtree(plan.workdir)
    if plan.seed_adapter is not None:
        shutil.copytree(plan.seed_adapter, adapters / plan.seed_adapter.name)
    served: dict[str, Served] = {}
    with local_stack(partitions=2, env=plan.env, workdir=plan.workdir) as stack:
        with console.status(f"[{plan.name}] starting a worker ..."):
            stack.start_worker(timeout=300)
        topics = stack.kafka.topics
        producer = kafka_producer(stack.kafka)
        with progress_bar(console) as progress:
            task = progress.add_task(f"[{plan.name}] catalog", total=len(items))
            produce(producer, topics.items, items, "item_id")
            stack.wait_consumed(
                topics.items, lambda lag: progress.update(task, completed=len(items) - lag)
            )
            progress.update(task, completed=len(items))
        stalls = 0
        with TopicReader(stack.kafka, [topics.recommendations]) as reader:
            started = time.time()
            if plan.pace_every is None:
                produce(producer, topics.events, train, "user_id")
                _collect(reader, train, served, wire, plan, console, "stream (online phase)")
            else:
                stalls = _paced(
                    producer, topics.events, train, _Collector(reader, served, wire), plan, console
                )
            stream_seconds = time.time() - started
            settle_started = time.time()
            _settle(adapters, plan, console)
            settle_seconds = time.time() - settle_started
            produce(producer, topics.events, probes, "user_id")
            _collect(reader, probes, served, wire, plan, console, "probes (final model)")
        producer.close()
    versions = published_versions(adapters)
    final = None
    if versions:
        final = plan.workdir / "final-adapter" / version_dir(adapters, versions[-1]).name
        shutil.copytree(version_dir(adapters, versions[-1]), final)
    rounds = read_rounds(adapters)
    return RunResult(
        plan.name,
        served,
        stream_seconds,
        settle_seconds,
        versions,
        final,
        rounds,
        paced=plan.pace_every is not None,
        stalls=stalls,
        probe_versions=tuple(sorted({served[str(p["event_id"])].model_version for p in probes})),
    )


class _Collector:
    """Reads recommendations into ``served`` and tracks which expected events lack one."""

    def __init__(self, reader: TopicReader, served: dict[str, Served], wire: Wire) -> None:
        self.reader, self.served, self.wire = reader, served, wire
        self.missing: set[str] = set()

    def expect(self, events: Sequence[Record]) -> None:
        self.missing.update(str(e["event_id"]) for e in events)

    def poll(self, seconds: float) -> None:
        for rec in self.reader.poll(seconds):
            event_id = str(rec.value.get("event_id"))
            if event_id in self.missing:
                self.served[event_id] = _served(rec, self.wire)
                self.missing.discard(event_id)

    def wait(self, deadline: float, name: str, shown: Callable[[], None]) -> None:
        """Poll until every expected event has its recommendation (``shown`` after each
        poll); past ``deadline`` (monotonic), a TimeoutError."""
        while self.missing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {len(self.missing)} events got no recommendation")
            self.poll(0.2)
            shown()


def probe_records(wire: Wire, probes: Sequence[Record]) -> list[Record]:
    """Phase 2's events on the wire, marked ``learn: false``: no probe trains the model,
    so every test list comes from the model the stream left (the offline protocol's),
    however many probes there are (Beauty's 22k would otherwise make ~22 rounds due)."""
    return [{**wire.record(e, "item_id", "user_id"), "learn": False} for e in probes]


def _paced(
    producer: Any,
    topic: str,
    events: Sequence[Record],
    collector: _Collector,
    plan: RunPlan,
    console: Console,
) -> int:
    """Phase 1 paced to the trainer (module docstring); returns the due rounds that did not
    come within ``plan.stall`` seconds (after 3 of them the rest of the stream is not held)."""
    every = plan.pace_every or 1
    chunk = max(1, every // 10)
    adapters = plan.workdir / "adapters"
    users: set[str] = set()
    samples = trained = stalls = 0
    deadline = time.monotonic() + plan.timeout
    with progress_bar(console) as progress:
        task = progress.add_task(f"[{plan.name}] stream (paced to the trainer)", total=len(events))

        def served() -> None:  # every event produced so far has its recommendation
            collector.wait(
                deadline, plan.name, lambda: progress.update(task, completed=len(collector.served))
            )

        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]
            collector.expect(part)
            produce(producer, topic, part, "user_id")
            for event in part:
                user = str(event["user_id"])
                samples += user in users
                users.add(user)
            collector.poll(0)
            progress.update(task, completed=len(collector.served))
            if samples - trained >= every and stalls < 3:
                served()
                trained, came = _round_for(adapters, samples - every, plan.stall)
                stalls += not came
                if not came:
                    console.print(
                        f"[yellow]{plan.name}: no training round within {plan.stall:.0f} s "
                        f"after {samples} samples; going on[/]"
                    )
        served()
    return stalls


def _round_for(adapters: Path, past: int, stall: float) -> tuple[int, bool]:
    """Wait up to ``stall`` seconds for a logged round that saw more than ``past`` samples;
    returns the newest round's ``samples_seen`` (0: none yet) and whether one came."""
    until = time.monotonic() + stall
    while True:
        rounds = read_rounds(adapters, empty=True)  # a round that trained nothing counts
        seen = int(rounds[-1].get("samples_seen", 0)) if rounds else 0
        if seen > past:
            return seen, True
        if time.monotonic() > until:
            return seen, False
        time.sleep(0.05)


def _collect(
    reader: TopicReader,
    events: Sequence[Record],
    served: dict[str, Served],
    wire: Wire,
    plan: RunPlan,
    console: Console,
    what: str,
) -> None:
    collector = _Collector(reader, served, wire)
    collector.expect(events)
    total = len(collector.missing)
    with progress_bar(console) as progress:
        task = progress.add_task(f"[{plan.name}] {what}", total=total)
        collector.wait(
            time.monotonic() + plan.timeout,
            plan.name,
            lambda: progress.update(task, completed=total - len(collector.missing)),
        )


def _served(rec: Received, wire: Wire) -> Served:
    value = rec.value
    return Served(
        items=tuple(wire.strip(str(i["item_id"])) for i in value.get("items", [])),
        model_version=int(value.get("model_version", 0)),
        latency_ms=float(value.get("latency_ms", 0.0)),
    )


def _settle(adapters: Path, plan: RunPlan, console: Console) -> None:
    """Wait until no new round was logged (a version published or a candidate rejected)
    for ``plan.settle`` seconds (the trainer trains the stream's tail within its T
    seconds, then has nothing new to learn)."""

    def progress() -> tuple[int | None, int]:
        return latest_version(adapters), len(read_rounds(adapters))

    last, since = progress(), time.monotonic()
    deadline = time.monotonic() + plan.timeout
    with console.status(f"[{plan.name}] waiting for the trainer to publish the stream's tail"):
        while time.monotonic() - since < plan.settle and time.monotonic() < deadline:
            time.sleep(0.5)
            now = progress()
            if now != last:
                last, since = now, time.monotonic()
