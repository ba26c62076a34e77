"""The plain class behind the trainer actor: online fine-tuning and publishing versions.

    events agent ──forget(user_ids)──► those users' samples dropped (inbox and buffer)
    events agent ──add(samples)──► inbox ──(background thread)──► OnlineTrainer
        every N samples / T seconds, at most max_share of the time: train a bounded
        round on the candidate ──► gate:
        beats the live version on the round's held-out newest samples? ──► version
        v+1's files ──► catalog.publish(v+1, files) ──► servers follow on their next batch
        (rejected: counted, logged with both scores, nothing published)

`add` only appends to an inbox under a lock, so feeding never waits for training. A
restart continues from the version the catalog serves (the replay buffer is soft state
and starts empty). The trainer keeps nothing on disk: it may run on any Ray node.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from workers.adapters import AdapterConfig, RecAdapter
from workers.adapters.io import AdapterFiles, adapter_files, adapter_from_files
from workers.encoder import pick_device
from workers.model import Vector
from workers.training import OnlineTrainer, RoundReport, Sample, TrainingConfig

log = logging.getLogger(__name__)

FETCH_PAGE = 4096  # base vectors per catalog call (~6 MB at 384 dimensions)


class TrainingCatalog(Protocol):
    """What the trainer needs from the store: base vectors in, new versions out."""

    def items(self, item_ids: Sequence[str]) -> Mapping[str, tuple[Vector, str]]: ...

    def indexed_since(self, log_id: str | None, position: int) -> tuple[str, int, list[str]]: ...

    def publish(self, version: int, files: AdapterFiles) -> int: ...

    def log_round(self, entry: Mapping[str, Any]) -> None: ...

    def latest(self) -> tuple[int, AdapterFiles | None]: ...


@dataclass
class TrainerStatus:
    version: int
    samples_received: int
    rounds: int
    failed_rounds: int
    last_loss: float | None
    train_seconds: float
    last_error: str | None
    rejected: int = 0  # candidates the gate turned down
    empty_rounds: int = 0  # due rounds that trained nothing (no usable sample outside the gate's)
    last_live_score: float | None = None  # the gate's NDCG@10 of the live version ...
    last_candidate_score: float | None = None  # ... of the last candidate ...
    last_frozen_score: float | None = None  # ... and of the frozen model (the floor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_adapter(config: TrainingConfig, dim: int) -> RecAdapter:
    """A fresh (version 0) adapter for base vectors of size ``dim``."""
    return RecAdapter(AdapterConfig(**config.adapter_fields(dim)))


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux nice values belong to a
    thread; threads it starts later inherit it). Elsewhere, or at 0, nothing changes."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    me = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))


class TrainerService:
    """Owns the one `OnlineTrainer` of a cluster and publishes its versions."""

    def __init__(
        self,
        config: TrainingConfig,
        catalog: TrainingCatalog,
        dim: int,
        *,
        background: bool = True,
        poll_seconds: float = 0.2,
    ) -> None:
        self.config = config
        self.catalog = catalog
        _, files = catalog.latest()
        adapter = adapter_from_files(files) if files is not None else new_adapter(config, dim)
        if adapter.version > 0:
            log.info("trainer resumes from published version %d", adapter.version)
        self.device = pick_device(config.num_gpus)
        self.trainer = OnlineTrainer(config, adapter.to(self.device))
        self._inbox: list[Sample] = []
        self._inbox_lock = threading.Lock()
        self._train_lock = threading.Lock()
        self._status = TrainerStatus(adapter.version, 0, 0, 0, None, 0.0, None)
        self._catalog_log: str | None = None  # how far the whole catalog is followed
        self._catalog_position = 0
        self._rest_until = 0.0  # no round starts before this time (`step`)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._loop, args=(poll_seconds,), name="streamrec-trainer", daemon=True
            )
            self._thread.start()

    # -- called by the events agent / operators --------------------------------------------

    def add(self, samples: Sequence[Sample]) -> int:
        """Queue training samples; returns how many wait in the inbox. Never trains.

        The inbox keeps at most the replay buffer's capacity (the newest samples): older
        ones would be pushed out of the buffer by these before any round saw them."""
        with self._inbox_lock:
            self._inbox.extend(samples)
            self._status.samples_received += len(samples)
            del self._inbox[: max(0, len(self._inbox) - self.config.buffer_size)]
            return len(self._inbox)

    def forget(self, user_ids: Sequence[str]) -> int:
        """Drop every sample of ``user_ids``, waiting in the inbox or in the replay buffer;
        returns how many were dropped. A round already running keeps the samples it drew
        (it waits for the lock); no later round sees them."""
        gone = set(user_ids)
        with self._train_lock:
            with self._inbox_lock:
                kept = [s for s in self._inbox if s.user_id not in gone]
                dropped = len(self._inbox) - len(kept)
                self._inbox = kept
            dropped += self.trainer.forget(gone)
        if dropped:
            log.info("forgot %d samples of %d users", dropped, len(gone))
        return dropped

    def status(self) -> dict[str, Any]:
        return self._status.to_dict()

    def version(self) -> int:
        return self._status.version

    def train_now(self) -> int:
        """Train one round now on whatever was received (if anything new); returns the
        version published afterwards (unchanged when there was nothing to learn)."""
        with self._train_lock:
            self._drain()
            if self.config.mode == "online" and self.trainer.pending_samples() > 0:
                self._round(time.time())
        return self._status.version

    def step(self, now: float | None = None) -> RoundReport | None:
        """One tick of the background loop: train and publish if a round is due and the
        last one has had its rest (`TrainingConfig.max_share`)."""
        with self._train_lock:
            self._drain()
            now = time.time() if now is None else now
            if now < self._rest_until or not self.trainer.due(now):
                return None
            started = time.perf_counter()
            report = self._round(now)
            if self.config.max_share < 1.0:  # never past T after the round ended
                took = time.perf_counter() - started
                rest = min(took / self.config.max_share, took + self.config.train_every_seconds)
                self._rest_until = now + rest
            return report

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- internals ------------------------------------------------------------------------

    def _fetch(self, item_ids: Sequence[str]) -> None:
        """Cache the base vectors of ``item_ids`` (absent ones: deleted), in pages."""
        for start in range(0, len(item_ids), FETCH_PAGE):
            found = self.catalog.items(item_ids[start : start + FETCH_PAGE])
            self.trainer.add_base_vectors(
                {k: np.asarray(v, dtype=np.float32) for k, (v, _) in found.items()},
                {k: scenario for k, (_, scenario) in found.items()},
            )

    def _drain(self) -> None:
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
        if batch:
            self.trainer.add(batch)

    def _round(self, now: float) -> RoundReport:
        started = time.perf_counter()
        if self.config.whole_catalog:
            self._catalog_log, self._catalog_position, indexed = self.catalog.indexed_since(
                self._catalog_log, self._catalog_position
            )
            self._fetch(list(dict.fromkeys(indexed)))
        self._fetch(sorted(self.trainer.missing_items()))
        report = self.trainer.train_round(now)
        status = self._status
        number = status.rounds + status.rejected + status.empty_rounds + 1
        empty = report.steps == 0  # nothing usable yet (no vectors, or every sample held out)
        if empty:
            status.empty_rounds += 1  # logged all the same: its samples were used up
        elif (
            report.accepted
        ):  # published before it is logged (the log never names a missing version)
            self.catalog.publish(report.version, adapter_files(self._cpu_copy(), report.version))
        self.catalog.log_round({"round": number, "time": time.time(), **asdict(report)})
        if empty:
            return report
        status.last_loss = report.loss
        status.train_seconds += time.perf_counter() - started
        if report.gate_samples:
            status.last_live_score = report.live_score
            status.last_candidate_score = report.candidate_score
            status.last_frozen_score = report.frozen_score
        if not report.accepted:
            status.rejected += 1
            log.info(
                "gate rejected a candidate: NDCG@10 %.4f vs live version %d's %.4f (frozen "
                "model %.4f) on %d held-out samples (training continues from the candidate)",
                report.candidate_score,
                report.version,
                report.live_score,
                report.frozen_score,
                report.gate_samples,
            )
            return report
        status.version = report.version
        status.rounds += 1
        log.info("published model version %d (%s)", report.version, report)
        return report

    def _cpu_copy(self) -> RecAdapter:
        """What is published: the live adapter, as CPU tensors (servers load on CPU)."""
        adapter = self.trainer.live
        return adapter if self.device.type == "cpu" else copy.deepcopy(adapter).to("cpu")

    def _loop(self, poll_seconds: float) -> None:
        lower_priority(self.config.nice)
        while not self._stop.wait(poll_seconds):
            try:
                self.step()
            except Exception as exc:  # a failed round must not end online training
                self._status.failed_rounds += 1
                self._status.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.exception("training round failed; the next one retries")
