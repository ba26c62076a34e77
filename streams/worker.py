"""`streamrec worker`: one Faust worker process attached to a Ray cluster."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from streams import agents, catalog, expiry, heap, metrics
from streams.app import Pipeline, by_user_topic_name, create_app, users_store_memory
from streams.remote import describe
from streams.settings import HealthConfig, RayConfig, Settings
from workers.gc_heap import freeze_heap

log = logging.getLogger(__name__)


def use_event_loop(name: str) -> None:
    """Make ``name`` ('uvloop' or 'asyncio') the loop every later ``asyncio`` loop of this
    process is (mode's loop selection, which Faust's worker runs on). uvloop cut the
    worker's CPU per event by 13-19 % in a training-off firehose (BENCHMARKS.md, session 27)."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")


def init_ray(config: RayConfig) -> None:
    """Connect to the configured Ray cluster, or start a local one.

    Must run before the Faust worker starts: once Faust has replaced stdout/stderr,
    ``ray.init`` fails asking them for a file descriptor (see docs/ENVIRONMENT-NOTES.md).
    Joining a cluster needs Ray's token authentication, which Ray reads from RAY_AUTH_*
    when it is imported: `streams.cli` sets them from ``config.auth_env()`` first.
    """
    import ray

    if ray.is_initialized():
        return
    ray.init(
        # "local": a new instance. None would join whatever cluster this machine started
        # last (Ray reads /tmp/ray/ray_current_cluster), even one that has since stopped.
        address=config.address or "local",
        namespace=config.namespace,
        num_cpus=config.num_cpus if config.address is None else None,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=True,
        # A new local instance only: joining a cluster takes the cluster's own settings.
        _system_config=None if config.address else {"worker_niceness": config.worker_niceness},
    )


class Health:
    """Readiness and liveness for probes, as files.

    The ready file exists while the worker has started consuming and its serving path
    (its recommender and the catalog replica it reads) answers within the timeout; the
    alive file's modification time moves every check while the event loop runs.
    """

    def __init__(
        self, actors: Any, config: HealthConfig, ready: Path | None, alive: Path | None
    ) -> None:
        self.actors, self.config, self.ready, self.alive = actors, config, ready, alive
        self.started = False
        self.reachable = True

    async def actors_answer(self) -> bool:
        """Whether the actors on the event path answer within the timeout."""
        try:
            await asyncio.wait_for(
                self.actors.recommender.catalog_version.remote(), self.config.timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("actors do not answer (%s): not ready", describe(exc))
            return False
        return True

    async def check(self) -> bool:
        """One check: update both files; returns readiness."""
        self.reachable = await self.actors_answer()
        if self.alive is not None:
            self.alive.parent.mkdir(parents=True, exist_ok=True)
            self.alive.touch()
        ready = self.started and self.reachable
        if self.ready is not None:
            if ready:
                self.ready.parent.mkdir(parents=True, exist_ok=True)
                self.ready.write_text(str(os.getpid()))
            else:
                self.ready.unlink(missing_ok=True)
        return ready

    def clear(self) -> None:
        for path in (self.ready, self.alive):
            if path is not None:
                path.unlink(missing_ok=True)


class Gauges:
    """Refreshes the gauges no agent moves: lag, model version, catalog size, training."""

    def __init__(self, pipeline: Pipeline, actors: Any, timeout: float) -> None:
        self.pipeline, self.actors, self.timeout = pipeline, actors, timeout
        self.topics = {pipeline.settings.kafka.topics.events, by_user_topic_name(pipeline.settings)}

    def lag(self) -> dict[tuple[str, int], int]:
        """{(topic, partition): records not yet committed} of the events and by-user
        partitions owned now."""
        consumer = self.pipeline.app.consumer
        committed = getattr(consumer, "_committed_offset", {})  # (faust: no public view)
        lag = {}
        for tp in consumer.assignment():
            if tp.topic in self.topics:
                high = consumer.highwater(tp)
                done = committed.get(tp)
                if high is not None:
                    lag[tp.topic, tp.partition] = max(
                        0, int(high) - (0 if done is None else done + 1)
                    )
        return lag

    async def _ask(self, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the gauge keeps its last value; health reports the actor
            log.info("metrics: no answer (%s)", describe(exc))
            return None

    async def refresh(self) -> None:
        metrics.set_lag(self.lag())
        for part, size in users_store_memory(self.pipeline.users).items():
            metrics.USERS_STORE.labels(part=part).set(size)
        version = await self._ask(self.actors.recommender.model_version.remote())
        if version is not None:
            metrics.MODEL_VERSION.set(version)
        items = await self._ask(self.actors.catalog.count.remote())
        if items is not None:
            metrics.CATALOG_ITEMS.set(items)
        if self.actors.trainer is not None:
            status = await self._ask(self.actors.trainer.status.remote())
            if status is not None:
                metrics.set_training(status)


def build(settings: Settings) -> tuple[Pipeline, Health]:
    """Start (or attach to) the Ray actors and build the Faust app with every agent."""
    from workers.actors import start_actors

    init_ray(settings.ray)
    actors = start_actors(
        settings.encoder, settings.store, settings.recommend, settings.adapters, settings.training
    )
    pipeline = create_app(settings)
    catalog.register(pipeline, actors)
    agents.register(pipeline, actors)
    expiry.register_expiry(pipeline)
    health = Health(actors, settings.health, settings.ready_file, settings.alive_file)
    pipeline.app.timer(settings.health.interval, name="streamrec.health")(health.check)
    gauges = Gauges(pipeline, actors, settings.health.timeout)
    pipeline.app.timer(settings.metrics.interval, name="streamrec.metrics")(gauges.refresh)
    if settings.heap.trim_interval:
        pipeline.app.timer(settings.heap.trim_interval, name="streamrec.heap")(_trim_heap)
    return pipeline, health


async def _trim_heap() -> None:
    # malloc_trim runs through ctypes, which releases the interpreter lock: on a thread,
    # the event loop goes on while glibc walks its arenas.
    started = time.perf_counter()
    released = await asyncio.to_thread(heap.trim)
    log.debug(
        "heap trimmed in %.1f ms (released: %s)", 1000 * (time.perf_counter() - started), released
    )


def _worker_class(health: Health) -> type[Any]:
    import faust

    class StreamrecWorker(faust.Worker):
        """A Faust worker that signals readiness through a file (for probes and tests)."""

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            freeze_heap("worker")  # start-up's objects out of every later collection
            log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
            health.started = True
            await health.check()

    return StreamrecWorker


def run(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM (blocking)."""
    use_event_loop(settings.event_loop)  # before anything (Ray, Faust) makes a loop
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    heap.limit_arenas(settings.heap.arenas)  # before Ray's, RocksDB's and Kafka's threads
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.ready_file is not None:
        settings.ready_file.unlink(missing_ok=True)
    pipeline, health = build(settings)
    metrics.serve(settings.metrics.port, settings.metrics.bind)
    worker = _worker_class(health)(
        pipeline.app,
        loglevel=settings.log_level,
        # Keep our stdout usable (e.g. for `streamrec demo` progress).
        redirect_stdouts=False,
        override_logging=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as stopped:
        failure = getattr(pipeline.app, "failure", None)  # an agent stopped it (`_App`)
        if failure is not None and not stopped.code:
            raise SystemExit(1) from failure
        raise
    finally:
        import ray

        health.clear()
        ray.shutdown()
