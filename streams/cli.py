"""The ``streamrec`` command: process entry points."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from streams.settings import Settings


def _settings(**kafka_overrides: object) -> Settings:
    """Settings from STREAMREC_* env vars; Kafka options given on the command line win."""
    from streams.kafka_settings import KafkaConfig

    base = Settings()
    given = {k: v for k, v in kafka_overrides.items() if v is not None}
    try:
        kafka = KafkaConfig.model_validate({**base.kafka.model_dump(), **given})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return base.model_copy(update={"kafka": kafka})


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit in the main thread, so the ``finally`` blocks of a
    command that starts processes (a broker, workers, Ray) stop them: by default SIGTERM
    ends Python at once and leaves them running."""

    def _exit(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """streamrec: real-time recommendations from Kafka events with a pretrained language model.

    Configuration comes from STREAMREC_* environment variables (see the README).
    """


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1.")
@click.option("--partitions", type=int, default=None, help="Partitions per topic.")
def broker(port: int, partitions: int | None) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) and create the topics."""
    from tooling.broker import create_topics, start_broker

    embedded = start_broker(port)
    settings = _settings(broker=embedded.url, partitions=partitions)
    created = create_topics(settings.kafka)
    click.echo(f"broker listening on {embedded.bootstrap}; created topics: {', '.join(created)}")
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"] and embedded.process.poll() is None:
            time.sleep(0.2)
    finally:
        embedded.stop()


@main.command()
@click.option("--broker", default=None, help="Overrides STREAMREC_KAFKA__BROKER.")
def worker(broker: str | None) -> None:
    """Run a worker: Faust agents + Ray actors (local Ray unless STREAMREC_RAY__ADDRESS)."""
    settings = _settings(broker=broker)
    # Ray reads RAY_AUTH_* once, when it is imported: set them before anything imports it
    # (streams.settings does not). An operator's own RAY_AUTH_* variables win.
    settings.ray.apply_auth_env(os.environ)
    from streams.worker import run

    logging.basicConfig(level=settings.log_level)
    run(settings)


@main.command()
@click.option("--broker", default=None, help="Overrides STREAMREC_KAFKA__BROKER.")
@click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A MovieLens folder (u.data/u.item or ratings.csv/movies.csv) or items/events.jsonl.",
)
@click.option("--items", type=click.Path(exists=True, path_type=Path), help="items.jsonl")
@click.option("--events", type=click.Path(exists=True, path_type=Path), help="events.jsonl")
@click.option("--scenario", default="default", show_default=True, help="Scenario (MovieLens).")
@click.option("--rate", type=float, default=None, help="Events per second (default: max).")
@click.option("--limit", type=int, default=None, help="Produce at most this many events.")
@click.option("--no-items", is_flag=True, help="Produce events only.")
def produce(
    broker: str | None,
    dataset: Path | None,
    items: Path | None,
    events: Path | None,
    scenario: str,
    rate: float | None,
    limit: int | None,
    no_items: bool,
) -> None:
    """Produce a catalog and then its events, in time order, to the topics."""
    from tooling import datasets
    from tooling.produce import kafka_producer
    from tooling.produce import produce as send

    if dataset is None and items is None and events is None:
        raise click.UsageError("give --dataset, or --items and/or --events")
    data = datasets.load(dataset, scenario) if dataset else datasets.load_jsonl(items, events)
    settings = _settings(broker=broker)
    producer = kafka_producer(settings.kafka)
    try:
        if not no_items:
            n = send(producer, settings.kafka.topics.items, data.items, "item_id")
            click.echo(f"items: {n} -> {settings.kafka.topics.items}")
        evs = data.events[:limit] if limit is not None else data.events
        n = send(producer, settings.kafka.topics.events, evs, "user_id", rate=rate)
        click.echo(f"events: {n} -> {settings.kafka.topics.events}")
    finally:
        producer.close()


@main.command()
@click.argument("user_id")
@click.option("--broker", default=None, help="Overrides STREAMREC_KAFKA__BROKER.")
def forget(user_id: str, broker: str | None) -> None:
    """Forget USER_ID: their state, pending items and training samples are removed.

    Produces a forget record to the events topic, keyed by the user like their events,
    so the workers apply it after the user's earlier events (README: "Forgetting").
    """
    from tooling.produce import kafka_producer, send_forget

    if not user_id.strip():
        raise click.BadParameter("a user id cannot be blank", param_hint="USER_ID")
    settings = _settings(broker=broker)
    producer = kafka_producer(settings.kafka)
    try:
        topic = settings.kafka.topics.events
        partition, offset = send_forget(producer, topic, user_id)
    finally:
        producer.close()
    click.echo(f"forget {user_id!r} -> {topic} (partition {partition}, offset {offset})")


@main.command()
@click.option("--users", type=int, default=80, show_default=True, help="Users replayed.")
@click.option("--events-per-user", type=int, default=50, show_default=True)
@click.option(
    "--min-ratings",
    type=int,
    default=5,
    show_default=True,
    help="Catalog = movies with at least this many ratings.",
)
@click.option("--show", type=int, default=3, show_default=True, help="Users printed at the end.")
@click.option("--rate", type=float, default=120.0, show_default=True, help="Events per second.")
@click.option(
    "--train-every", type=int, default=300, show_default=True, help="Samples per training round."
)
def demo(
    users: int, events_per_user: int, min_ratings: int, show: int, rate: float, train_every: int
) -> None:
    """The main job on embedded defaults: broker, Ray, a worker, MovieLens, recommendations."""
    exit_on_sigterm()
    from tooling.demo import DemoOptions, run_demo

    options = DemoOptions(users, events_per_user, min_ratings, show, rate, train_every)
    sys.exit(run_demo(options))


@main.command()
@click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/ml-100k"),
    show_default=True,
)
@click.option("--events", "n_events", type=int, default=20000, show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="JSON results file.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="STREAMREC_NAME=VALUE",
    help="A worker setting for both stacks (repeatable), e.g. STREAMREC_TRAINING__NICE=0.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events/s of the fixed-rate paced phases (training on and off)  "
    "[default: the issue's 1,000, tooling.bench.PACED_RATE].",
)
def bench(
    dataset: Path,
    n_events: int,
    output: Path | None,
    settings: tuple[str, ...],
    rate: float | None,
) -> None:
    """Replay a dataset through the real pipeline; throughput, latency, passthrough ceiling."""
    exit_on_sigterm()
    from tooling.bench import PACED_RATE, run_bench

    env = dict(s.split("=", 1) for s in settings)
    if bad := [k for k in env if not k.startswith("STREAMREC_")]:
        raise click.BadParameter(f"not a streamrec setting: {', '.join(bad)}", param_hint="--set")
    sys.exit(run_bench(dataset, n_events, output, env, PACED_RATE if rate is None else rate))


@main.command()
@click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/ml-100k"),
    show_default=True,
    help="Its events are replayed in a loop (fresh event ids).",
)
@click.option("--minutes", type=click.IntRange(min=1), default=60, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=200.0,
    show_default=True,
    help="Events per second.",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=None,
    help="Minutes not judged  [default: 10, or minutes - 1 for a shorter run].",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("results/soak.json"),
    show_default=True,
    help="JSON results file.",
)
def soak(dataset: Path, minutes: int, rate: float, warmup: int | None, output: Path) -> None:
    """Run the pipeline at a steady rate; sample the RSS of the worker, each Ray actor and
    the broker every minute; exit 1 unless the worker and each actor stayed within 10 %
    after warm-up (the in-memory broker keeps every record: reported, not judged)."""
    exit_on_sigterm()
    from tooling.soak import SoakOptions, run_soak

    if warmup is None:
        warmup = min(10, minutes - 1)
    try:
        options = SoakOptions(dataset, minutes, rate, warmup, output)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    sys.exit(run_soak(options))


@main.command(name="eval")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--seed", type=int, default=2020, show_default=True)
@click.option("--users", type=int, default=None, help="Evaluate a random subset of users.")
@click.option(
    "--transfer-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Results folder of an earlier eval (another scenario): also start from its adapter.",
)
@click.option("--zero-shot/--no-zero-shot", default=True, show_default=True)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Online runs with seeds SEED, SEED+1, ...; with 2 or more the report adds mean ± sd.",
)
@click.option(
    "--paced/--firehose",
    default=True,
    show_default=True,
    help="Hold the stream while a due training round runs (rounds every N samples, "
    "whatever the machine's speed), or produce it all at once.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="STREAMREC_NAME=VALUE",
    help="A worker setting for every run (repeatable).",
)
def evaluate(
    data: Path,
    out: Path,
    seed: int,
    users: int | None,
    transfer_from: Path | None,
    zero_shot: bool,
    seeds: int,
    paced: bool,
    overrides: tuple[str, ...],
) -> None:
    """Leave-one-out, full ranking, prequential and cold-start metrics, through the real
    pipeline, beside Pop, ItemKNN and the peers of PEERS.md; writes a report and plots."""
    exit_on_sigterm()
    from tooling.evaluate import EvalOptions, run_eval

    env = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("STREAMREC_"):
            raise click.BadParameter(f"expected STREAMREC_NAME=VALUE, got {item!r}")
        env[name] = value
    opts = EvalOptions(
        data, out, seed, users, transfer_from, zero_shot, env=env, seeds=seeds, paced=paced
    )
    run_eval(opts)


if __name__ == "__main__":
    main()
