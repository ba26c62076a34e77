"""`streamrec bench`: replay a dataset through the real pipeline and measure it.

Phases, all against one embedded broker and one worker (local Ray, embedded model):
1. catalog: produce every item, wait until the worker has committed them (indexed);
2. firehose: produce N events at once; sustained events/s = N / (last rec - first send);
   the CPU milliseconds each process (worker, each actor class, broker) spent per event;
3. paced: more events at half the firehose rate; latency event -> recommendation when
   the pipeline is not saturated; then more at ``PACED_RATE`` (the issue's rate), with
   the mean time per stage, the training rounds published meanwhile and the latency
   while a round ran and between rounds (`tooling.round_split`); then new-item
   freshness (5 probes) and the RSS of the worker and its actors (`tooling.bench_probes`);
4. ceiling: a bare aiokafka consume -> produce passthrough of the same N events on the
   same broker, the rate no Kafka pipeline on this machine can beat;
5. training off: a second stack whose worker does not train, catalog and firehose again
   (the issue's "training on >= 0.8 x training off", measured in the same run), then
   the following events paced at a fixed ``PACED_RATE`` (the issue's latency target is
   set at 1,000 events/s), with the mean time per stage from the worker's metrics; then
   a firehose of the next N events with users interleaved (`tooling.datasets.interleaved`: a random
   order, as many users' live traffic comes), where every event has a state to read and
   write.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from streams.kafka_auth import client_kwargs
from streams.kafka_settings import KafkaConfig
from streams.metrics import STAGES
from tooling.bench_probes import (
    CpuSampler,
    cpu_by_process,
    cpu_ms_per_event,
    memory,
    new_item_freshness,
)
from tooling.bench_table import print_results
from tooling.consume import Received, TopicReader
from tooling.datasets import Record, interleaved, load
from tooling.evaluation.latency import PERCENTILES_NOTE, percentile
from tooling.local import LocalStack, Scraped, local_stack
from tooling.processes import actor_pids
from tooling.produce import kafka_producer, produce
from tooling.round_split import busy_windows, split
from workers.gc_heap import freeze_heap

#: The fixed rate of the paced phases at the issue's rate, events/s, and their length, s.
PACED_RATE, PACED_SECONDS = 1000.0, 10
#: Fewest events left for the firehose with users interleaved (training off).
MIN_INTERLEAVED = 2000
#: The worker's metric of training rounds published (`streams.metrics.TRAINING_ROUNDS`).
ROUNDS = ("streamrec_training_rounds", ())


@dataclass
class Phase:
    events: int
    seconds: float
    events_per_s: float
    latency_ms: dict[str, float]


def _latencies(recs: list[Received]) -> dict[str, float]:
    # The pipeline's own measure: the event's Kafka timestamp -> its recommendation is
    # produced. Not this reader's receipt time: a kafka-python consumer assigned several
    # Tansu partitions was seen to fall seconds behind on one of them (docs/ENVIRONMENT-NOTES.md).
    return _percentiles([float(r.value["latency_ms"]) for r in recs])


def _replay(
    stack: LocalStack,
    events: list[Record],
    rate: float | None,
    keep: list[tuple[float, float]] | None = None,
) -> Phase:
    """``events`` at ``rate`` (None: at once); ``keep`` gets each paced event's (produce
    time, latency ms)."""
    topics = stack.kafka.topics
    wanted = {e["event_id"] for e in events}
    with TopicReader(stack.kafka, [topics.recommendations]) as reader:
        started = time.time()
        if rate is None:
            producer = kafka_producer(stack.kafka)
            produce(producer, topics.events, events, "user_id")
            producer.close()
        else:  # a process of its own: this one's reader would slow the pace (its GIL)
            spawn = multiprocessing.get_context("spawn")
            pacer = spawn.Process(target=_produce_paced, args=(stack.kafka, events, rate))
            pacer.start()
            pacer.join()
            if pacer.exitcode != 0:
                raise RuntimeError(f"the paced producer exited with {pacer.exitcode}")
        seen = reader.read_until(
            lambda got: wanted <= {r.value["event_id"] for r in got}, timeout=1800
        )
    recs = [r for r in seen if r.value["event_id"] in wanted]
    if rate is not None:  # the rate offered: from the first event produced to the last
        produced = [float(r.value["ts"]) - float(r.value["latency_ms"]) / 1000.0 for r in recs]
        if keep is not None:
            keep.extend(
                (t, float(r.value["latency_ms"])) for t, r in zip(produced, recs, strict=True)
            )
        started = min(produced)
        elapsed = max(produced) - started
    else:  # sustained: from the first send to the last recommendation
        elapsed = max(r.received_at for r in recs) - started
    return Phase(len(recs), round(elapsed, 2), round(len(recs) / elapsed, 1), _latencies(recs))


def _produce_paced(kafka: KafkaConfig, events: list[Record], rate: float) -> None:
    freeze_heap("paced producer")  # no full collection holds up the pace (workers.gc_heap)
    producer = kafka_producer(kafka)
    produce(producer, kafka.topics.events, events, "user_id", rate=rate)
    producer.close()


async def _passthrough(kafka: KafkaConfig, source: str, target: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    bootstrap = kafka.bootstrap_servers()
    auth = client_kwargs(kafka)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **auth)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **auth)
    await consumer.start()
    await producer.start()
    try:
        parts = [TopicPartition(source, p) for p in consumer.partitions_for_topic(source) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        copied = 0
        started = time.perf_counter()
        while copied < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for r in records:
                    await producer.send(target, r.value, key=r.key)
                copied += len(records)
        await producer.flush()
        return copied / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


def _catalog(stack: LocalStack, items: list[Record]) -> float:
    """Produce every item; seconds until the worker has committed them all (indexed)."""
    producer = kafka_producer(stack.kafka)
    t0 = time.monotonic()
    produce(producer, stack.kafka.topics.items, items, "item_id")
    producer.close()
    stack.wait_consumed(stack.kafka.topics.items, interval=0.2)
    return time.monotonic() - t0


def _measured_firehose(stack: LocalStack, events: list[Record]) -> dict[str, Any]:
    """The firehose, with the CPU milliseconds per event each process spent on it."""
    workers, broker = [w.pid for w in stack.workers], stack.broker.process.pid
    before = cpu_by_process(workers, broker)
    burst = _replay(stack, events, rate=None)
    cpu = cpu_ms_per_event(before, cpu_by_process(workers, broker), burst.events)
    return {**asdict(burst), "cpu_ms_per_event": cpu}


def _unseen_picks(items: list[Record], replayed: list[Record], n: int = 5) -> list[Record]:
    """``n`` items spread over the catalog that no replayed event named. The freshness
    probe needs its twin to be the original's nearest neighbour: an item with
    interactions carries what training learned of its id, which its new twin cannot, and
    the twin of a popular item then ranked outside the ten (two bench runs timed out)."""
    named = {e["item_id"] for e in replayed}
    unseen = [item for item in items if item["item_id"] not in named] or items
    return [unseen[(k * 97) % len(unseen)] for k in range(n)]


def _freshness(stack: LocalStack, item: Record) -> float | None:
    """Seconds until the twin of ``item`` was recommended (None: not within 60 s)."""
    try:
        return new_item_freshness(stack, item)
    except TimeoutError:
        return None


def _stages_ms(before: Scraped, after: Scraped) -> dict[str, float]:
    """Mean milliseconds an event spent in each stage of the worker (`metrics.STAGES`)
    between two scrapes of its /metrics."""

    def moved(name: str, stage: str) -> float:
        key = (name, (("stage", stage),))
        return after.get(key, 0.0) - before.get(key, 0.0)

    return {
        stage: round(
            1000.0
            * moved("streamrec_stage_seconds_total", stage)
            / max(1.0, moved("streamrec_stage_events_total", stage)),
            2,
        )
        for stage in STAGES
    }


def _paced_measured(stack: LocalStack, events: list[Record], rate: float) -> dict[str, Any]:
    """``events`` at ``rate``: latency, the mean time per stage, the training rounds the
    worker reported published meanwhile, and (training on) the latency while a round
    ran and between rounds (`tooling.round_split`)."""
    trainers = actor_pids("TrainerService", under=[w.pid for w in stack.workers])
    kept: list[tuple[float, float]] = []
    before = stack.scrape()
    with CpuSampler(trainers) as trainer_cpu:
        steady = _replay(stack, events, rate=rate, keep=kept)
    after = stack.scrape()
    rounds = after.get(ROUNDS, 0.0) - before.get(ROUNDS, 0.0)
    return {
        **asdict(steady),
        "target_rate": rate,
        "stages_ms": _stages_ms(before, after),
        "ray_call_ms": _means_ms(before, after, "streamrec_ray_call_seconds", "call"),
        "recommend_parts_ms": _means_ms(before, after, "streamrec_recommend_part_seconds", "part"),
        "training_rounds": int(rounds),
        "rounds_split": _rounds_split(trainer_cpu.samples, kept) if trainers else None,
    }


def _rounds_split(
    trainer_cpu: list[tuple[float, float]], events: list[tuple[float, float]]
) -> dict[str, Any]:
    """The share of ``events`` produced while the trainer ran a round, and the latency
    percentiles of those and of the rest (empty: none there)."""
    during, between = split(events, busy_windows(trainer_cpu))
    return {
        "share_during": round(len(during) / max(len(events), 1), 3),
        "during_ms": _percentiles(during),
        "between_ms": _percentiles(between),
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {f"p{q}": round(percentile(latencies, q), 1) for q in (50, 95, 99)}


def _means_ms(before: Scraped, after: Scraped, histogram: str, label: str) -> dict[str, float]:
    """Mean milliseconds per observation of ``histogram`` between two scrapes, by the
    value of its ``label`` (`streams.metrics.RAY_CALL`: each Ray call the worker awaited;
    `RECOMMEND_PARTS`: the recommend call's parts), for what was observed meanwhile."""
    means = {}
    for (name, labels), count in after.items():
        if name != f"{histogram}_count":
            continue
        calls = count - before.get((name, labels), 0.0)
        total = (f"{histogram}_sum", labels)
        if calls > 0:
            seconds = after.get(total, 0.0) - before.get(total, 0.0)
            means[dict(labels)[label]] = round(1000.0 * seconds / calls, 2)
    return means


def paced_sizes(total: int, n_events: int, firehose_rate: float, rate: float) -> tuple[int, int]:
    """How many events the half-rate paced phase and the fixed-rate one take, after the
    first ``n_events`` (the firehose) of ``total``. The fixed-rate phase gets its
    ``PACED_SECONDS`` first: a fast firehose once sized the half-rate phase (20 s of it)
    to the rest of the dataset, and the fixed-rate phase, the issue's latency figure, got
    fewer events or none. The half-rate phase gets at most 20 s and at least 200 events."""
    at_rate = int(rate * PACED_SECONDS)
    spare = total - n_events - at_rate
    if spare < 200:
        raise ValueError(
            f"{total} events leave {spare} after a firehose of {n_events} and {at_rate} "
            f"paced at {rate:g}/s; the half-rate phase needs 200: use fewer --events"
        )
    return min(spare, max(200, int(firehose_rate * 20))), at_rate


def _training_off(
    data: Any, n_events: int, env: dict[str, str], rate: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The same catalog and firehose on a fresh stack whose worker does not train, then
    the following events at ``rate``, with the mean time per stage, then a firehose of the
    next events with users interleaved (None: the dataset has too few events left)."""
    paced = data.events[n_events : n_events + int(rate * PACED_SECONDS)]
    rest = data.events[n_events + len(paced) :][:n_events]
    with local_stack(partitions=2, env={**env, "STREAMREC_TRAINING__MODE": "zero-shot"}) as stack:
        stack.start_worker()
        _catalog(stack, data.items)
        burst = _measured_firehose(stack, data.events[:n_events])
        at_rate = _paced_measured(stack, paced, rate)
        enough = len(rest) >= min(n_events, MIN_INTERLEAVED)
        mixed = _measured_firehose(stack, interleaved(rest)) if enough else None
        return burst, at_rate, mixed


def run_bench(
    dataset: Path,
    n_events: int,
    output: Path | None,
    env: dict[str, str] | None = None,
    rate: float = PACED_RATE,
) -> int:
    """Every phase (module doc); ``env``: worker settings for both stacks; ``rate``: the
    fixed rate of the paced phases (the issue's 1,000/s by default; a slower machine
    that cannot sustain it measures queueing there, not serving)."""
    env = dict(env or {})
    console = Console()
    data = load(dataset)
    paced_sizes(len(data.events), n_events, 0.0, rate)  # too few events: say so before starting
    firehose = data.events[:n_events]
    console.rule(f"[bold]streamrec bench: {data.name}")
    with local_stack(partitions=2, env=env) as stack:
        t0 = time.monotonic()
        stack.start_worker()
        startup = time.monotonic() - t0
        console.print(f"worker ready in {startup:.1f}s")
        catalog_s = _catalog(stack, data.items)
        console.print(f"catalog: {len(data.items)} items indexed in {catalog_s:.1f}s")

        with console.status(f"firehose: {len(firehose)} events ..."):
            burst = _measured_firehose(stack, firehose)
        paced_n, at_rate_n = paced_sizes(len(data.events), n_events, burst["events_per_s"], rate)
        paced_rate = burst["events_per_s"] / 2
        with console.status(f"paced: {paced_n} events at {paced_rate:.0f}/s ..."):
            paced = _replay(stack, data.events[n_events : n_events + paced_n], rate=paced_rate)
        at_rate = data.events[n_events + paced_n :][:at_rate_n]
        with console.status(f"paced: {len(at_rate)} events at {rate:.0f}/s ..."):
            paced_on = _paced_measured(stack, at_rate, rate)
        with console.status("new-item freshness ..."):
            replayed = data.events[: n_events + paced_n + len(at_rate)]
            fresh = [_freshness(stack, item) for item in _unseen_picks(data.items, replayed)]
        used = memory(stack.workers[0].pid)
        with console.status("passthrough ceiling ..."):
            from tooling.broker import create_topics

            create_topics(stack.kafka, ["bench-passthrough"])
            ceiling = asyncio.run(
                _passthrough(
                    stack.kafka, stack.kafka.topics.events, "bench-passthrough", len(firehose)
                )
            )
    with console.status("firehose with training off (a second stack) ..."):
        untrained, paced_off, mixed = _training_off(data, n_events, env, rate)
    results: dict[str, Any] = {
        "dataset": data.name,
        "machine": f"{platform.machine()}, {_cpus()} CPUs, {platform.python_version()}",
        "settings": env,
        "worker_startup_s": round(startup, 1),
        "catalog_items": len(data.items),
        "catalog_items_per_s": round(len(data.items) / catalog_s, 1),
        "latency_percentiles": PERCENTILES_NOTE,
        "firehose": burst,
        "firehose_training_off": untrained,
        "training_on_vs_off": round(burst["events_per_s"] / untrained["events_per_s"], 3),
        "firehose_interleaved_training_off": mixed,
        "paced": {**asdict(paced), "target_rate": round(paced_rate, 1)},
        "paced_at_rate": paced_on,
        "paced_training_off": paced_off,
        "new_item_freshness_s": [None if f is None else round(f, 3) for f in fresh],
        "rss_mb": used,
        "passthrough_events_per_s": round(ceiling, 1),
        "pipeline_vs_passthrough": round(burst["events_per_s"] / ceiling, 4),
    }
    print_results(console, results)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
