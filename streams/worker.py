"""`streamrec worker`: one Faust worker process attached to a Ray cluster."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from streams import catalog, events
from streams.app import Pipeline, create_app
from streams.settings import RayConfig, Settings

log = logging.getLogger(__name__)


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
    )


def build(settings: Settings) -> Pipeline:
    """Start (or attach to) the Ray actors and build the Faust app with every agent."""
    from workers.actors import start_actors

    init_ray(settings.ray)
    actors = start_actors(
        settings.encoder, settings.store, settings.recommend, settings.adapters, settings.training
    )
    pipeline = create_app(settings)
    catalog.register(pipeline, actors)
    events.register_ingest(pipeline)
    events.register_recommend(pipeline, actors)
    return pipeline


def _worker_class(ready_file: Path | None) -> type[Any]:
    import faust

    class StreamrecWorker(faust.Worker):
        """A Faust worker that signals readiness through a file (for probes and tests)."""

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            if ready_file is not None:
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.write_text(str(os.getpid()))

    return StreamrecWorker


def run(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM (blocking)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.ready_file is not None:
        settings.ready_file.unlink(missing_ok=True)
    pipeline = build(settings)
    worker = _worker_class(settings.ready_file)(
        pipeline.app,
        loglevel=settings.log_level,
        # Keep our stdout usable (e.g. for `streamrec demo` progress).
        redirect_stdouts=False,
        override_logging=True,
    )
    try:
        worker.execute_from_commandline()
    finally:
        import ray

        if settings.ready_file is not None:
            settings.ready_file.unlink(missing_ok=True)
        ray.shutdown()
