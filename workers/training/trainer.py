"""`OnlineTrainer`: replay buffer + cached base vectors -> bounded rounds of fine-tuning.

    add(samples)                 # (history ids -> target id), stream order
    forget(user_ids)             # drop those users' samples from the replay buffer
    missing_items() -> ids       # the caller fetches their base vectors ...
    add_base_vectors(vec, scen)  # ... and hands them over
    due(now) -> bool             # N new samples, or T seconds with >= 1 new sample
    train_round(now) -> report   # steps_per_round Adam steps, then adapter.version += 1

Every round is seeded by (seed, version), so a run is deterministic, and a trainer
built on a loaded adapter of version v continues with v + 1. The optimizer's moments
are not checkpointed: a resumed trainer starts them afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import torch

from workers.adapters import RecAdapter
from workers.training.batch import build_batch, contrastive_loss
from workers.training.buffer import ReplayBuffer, Sample
from workers.training.catalog import BaseVectors
from workers.training.config import TrainingConfig


@dataclass(frozen=True)
class RoundReport:
    """What one `OnlineTrainer.train_round` did: ``loss`` is the mean over its steps
    (``steps == 0``: nothing trained, the version did not change, ``loss`` is NaN)."""

    version: int
    steps: int
    loss: float
    samples_seen: int
    rows: int
    seconds: float


class OnlineTrainer:
    """Fine-tunes ``adapter`` in place on (history -> next item) samples."""

    def __init__(self, config: TrainingConfig, adapter: RecAdapter) -> None:
        self.config = config
        self.adapter = adapter
        self.buffer = ReplayBuffer(config.buffer_size)
        self.vectors = BaseVectors(adapter.config.dim)
        self.samples_seen = 0
        self._pending = 0  # samples added since the last round
        self._clock: float | None = None  # time of the last round (or of the first due())
        self._missing: set[str] = set()
        self._optimizer = torch.optim.Adam(adapter.parameters(), lr=config.learning_rate)

    def add(self, samples: Iterable[Sample]) -> None:
        """Queue samples for replay (histories are cut to ``max_history``)."""
        cut = self.config.max_history
        kept = [
            s if len(s.history) <= cut else replace(s, history=s.history[-cut:]) for s in samples
        ]
        self.buffer.add(kept)
        self.samples_seen += len(kept)
        self._pending += len(kept)
        for sample in kept:
            for item in (*sample.history, sample.target):
                if item not in self.vectors:
                    self._missing.add(item)

    def forget(self, user_ids: Collection[str]) -> int:
        """Drop every replay sample of ``user_ids``; returns how many were dropped (the
        base vectors are the catalog's, not the users': they stay)."""
        return self.buffer.forget(user_ids)

    def pending_samples(self) -> int:
        """Samples added since the last round."""
        return self._pending

    def missing_items(self) -> set[str]:
        """Ids referenced by added samples whose base vectors are not cached yet."""
        return set(self._missing)

    def add_base_vectors(
        self, vectors: Mapping[str, npt.ArrayLike], scenarios: Mapping[str, str]
    ) -> None:
        """Cache frozen base vectors (dim,) and the items' scenarios (re-adding replaces)."""
        self.vectors.add(vectors, scenarios)
        self._missing.difference_update(vectors)

    def due(self, now: float) -> bool:
        """True when ``train_every_samples`` new samples arrived, or ``train_every_seconds``
        passed since the last round (the first call starts that clock) with >= 1 new
        sample. Never in zero-shot mode."""
        if self.config.mode == "zero-shot" or self._pending == 0:
            return False
        if self._pending >= self.config.train_every_samples:
            return True
        if self._clock is None:
            self._clock = now
        return now - self._clock >= self.config.train_every_seconds

    def train_round(self, now: float) -> RoundReport:
        """Run up to ``steps_per_round`` steps; bump ``adapter.version`` if any ran.

        Samples whose target (or whole history) has no cached vector are skipped.
        """
        started = time.perf_counter()
        self._pending = 0
        self._clock = now
        if self.config.mode == "zero-shot" or len(self.buffer) == 0 or len(self.vectors) == 0:
            return self._report(0, [], 0, started)
        version = self.adapter.version
        rng = np.random.default_rng([self.config.seed, version])
        losses: list[float] = []
        rows = 0
        self.adapter.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed * 1_000_003 + version)  # dropout
            for _ in range(self.config.steps_per_round):
                samples = self.buffer.sample(self.config.batch_size, rng)
                negatives = rng.integers(len(self.vectors), size=self.config.negatives)
                batch = build_batch(samples, self.vectors, self.config.max_history, negatives)
                if batch is None:
                    continue
                self._optimizer.zero_grad(set_to_none=True)
                loss = contrastive_loss(self.adapter, batch, self.vectors)
                loss.backward()  # type: ignore[no-untyped-call]
                self._optimizer.step()
                losses.append(float(loss.detach()))
                rows += len(batch.label)
        self.adapter.eval()
        if losses:
            self.adapter.version = version + 1
        return self._report(len(losses), losses, rows, started)

    def _report(self, steps: int, losses: list[float], rows: int, started: float) -> RoundReport:
        return RoundReport(
            version=self.adapter.version,
            steps=steps,
            loss=sum(losses) / len(losses) if losses else math.nan,
            samples_seen=self.samples_seen,
            rows=rows,
            seconds=time.perf_counter() - started,
        )
