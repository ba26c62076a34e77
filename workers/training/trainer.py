"""`OnlineTrainer`: replay buffer + cached base vectors -> bounded rounds of fine-tuning.

    add(samples)                 # (history ids -> target id), stream order
    forget(user_ids)             # drop those users' samples from the replay buffer
    missing_items() -> ids       # the caller fetches their base vectors ...
    add_base_vectors(vec, scen)  # ... and hands them over
    due(now) -> bool             # N new samples, or T seconds with >= M new ones
    train_round(now) -> report   # steps_per_round Adam steps on the candidate, then the gate
    live                         # the adapter to serve (version v); `adapter` is the candidate

The gate (``TrainingConfig.gate``): the newest samples not trained on yet (at most
``gate_samples`` of the round's new ones) are held out of the round; afterwards the
candidate, the live adapter and the frozen model (an untrained adapter: the language
model's text space) rank them (`gate.prequential_gains`), and the candidate goes live as
version v + 1 only if it is not measurably worse than the live one (`gate.goes_live`: the
mean paired difference above ``gate_margin`` minus ``gate_tolerance`` standard errors)
and ranks them at least as well as the frozen model.
After a rejection training continues from the candidate (what it learned is kept; the
next round is judged again against the same live version); after ``gate_patience``
rejections in a row the candidate restarts from the live adapter. Held-out samples
join training from the next round on.

Every round is seeded by (seed, round number), so a run is deterministic; a trainer
built on a loaded adapter of version v numbers its rounds from v and publishes v + 1
next. The optimizer's moments are not checkpointed: a resumed trainer starts them afresh.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
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
from workers.training.gate import goes_live, prequential_gains, usable
from workers.training.optim import AdapterOptimizer


@dataclass(frozen=True)
class RoundReport:
    """What one `OnlineTrainer.train_round` did: ``loss`` is the mean over its steps
    (``steps == 0``: nothing trained, the version did not change, ``loss`` is NaN).
    ``version`` is the live version after the round; ``accepted`` whether the round's
    candidate became it (always, without a gate); ``live_score`` and ``candidate_score``
    the gate's NDCG@10 on ``gate_samples`` held-out samples (NaN without a gate)."""

    version: int
    steps: int
    loss: float
    samples_seen: int
    rows: int
    seconds: float
    accepted: bool = False
    live_score: float = math.nan
    candidate_score: float = math.nan
    frozen_score: float = math.nan
    gate_samples: int = 0


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
        self._referenced: set[str] = set()  # every item a sample has named
        # Times each item was a sample's target, for the logQ correction (the ID table's
        # counts exist only with shrinkage and for items with a row).
        self._targets: Counter[str] = Counter()
        self._seen_rows: npt.NDArray[np.int64] | None = None  # their cache rows (lazy)
        self._optimizer = self._new_optimizer()
        self._round = adapter.version  # seeds each round's sampling and dropout
        self.gated = config.gate and config.mode == "online"
        # What serves: the candidate itself without a gate, else a copy it must beat.
        self.live = copy.deepcopy(adapter).eval() if self.gated else adapter
        # The gate's floor: the text space through an untrained adapter (zero-shot).
        self.frozen = self._frozen_model(adapter) if self.gated else None
        self.rejected = 0  # candidates the gate turned down, in all
        self._rejected_in_a_row = 0
        # The starting point the anchor pulls the shared projection and aggregator back to.
        self._anchor = {
            name: p.detach().clone()
            for name, p in adapter.named_parameters()
            if not name.startswith("item_residual")
        }

    def add(self, samples: Iterable[Sample]) -> None:
        """Queue samples for replay (histories are cut to ``max_history``)."""
        cut = self.config.max_history
        kept = [
            s if len(s.history) <= cut else replace(s, history=s.history[-cut:]) for s in samples
        ]
        self.buffer.add(kept)
        self.adapter.observe_targets(s.target for s in kept)
        self._targets.update(s.target for s in kept)
        self.samples_seen += len(kept)
        self._pending += len(kept)
        for sample in kept:
            for item in (*sample.history, sample.target):
                if item not in self._referenced:
                    self._referenced.add(item)
                    self._seen_rows = None
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
        self._seen_rows = None

    def due(self, now: float) -> bool:
        """True when ``train_every_samples`` (N) new samples arrived, or
        ``train_every_seconds`` passed since the last round (the first call starts that
        clock) with at least ``min_round_samples`` new ones (at N or more, only the count
        makes a round due). Never in zero-shot mode."""
        if self.config.mode == "zero-shot" or self._pending == 0:
            return False
        if self._pending >= self.config.train_every_samples:
            return True
        if self._clock is None:
            self._clock = now
        enough = self._pending >= self.config.min_round_samples
        return enough and now - self._clock >= self.config.train_every_seconds

    def train_round(self, now: float) -> RoundReport:
        """Run up to ``steps_per_round`` steps; bump ``adapter.version`` if any ran.

        Samples whose target (or whole history) has no cached vector are skipped.
        """
        started = time.perf_counter()
        fresh, self._pending = self._pending, 0
        self._clock = now
        if self.config.mode == "zero-shot" or len(self.buffer) == 0 or len(self.vectors) == 0:
            return self._report(0, [], 0, started)
        held = self.buffer.newest(min(fresh, self.config.gate_samples)) if self.gated else []
        losses, rows = self._train(hold_out=len(held))
        if not losses:
            return self._report(0, losses, rows, started)
        if not self.gated:
            self.adapter.version += 1
            return self._report(len(losses), losses, rows, started, accepted=True)
        scored = usable(held, self.vectors)
        live_gains = prequential_gains(self.live, scored, self.vectors)
        candidate_gains = prequential_gains(self.adapter, scored, self.vectors)
        frozen = (
            _mean(prequential_gains(self.frozen, scored, self.vectors)) if self.frozen else math.nan
        )
        accepted = goes_live(
            live_gains,
            candidate_gains,
            frozen,
            margin=self.config.gate_margin,
            tolerance=self.config.gate_tolerance,
        )
        live, candidate = _mean(live_gains), _mean(candidate_gains)
        if accepted:
            self.adapter.version = self.live.version + 1
            self.live = copy.deepcopy(self.adapter).eval()
            self._rejected_in_a_row = 0
        else:
            self.rejected += 1
            self._rejected_in_a_row += 1
            if 0 < self.config.gate_patience <= self._rejected_in_a_row:
                self._restart_from_live()
        return self._report(
            len(losses), losses, rows, started, accepted, live, candidate, frozen, len(scored)
        )

    def _train(self, hold_out: int) -> tuple[list[float], int]:
        """``steps_per_round`` steps on the candidate, the ``hold_out`` newest samples
        left out; returns each step's loss and the rows trained."""
        self._round += 1
        rng = np.random.default_rng([self.config.seed, self._round])
        losses: list[float] = []
        rows = 0
        self.adapter.train()
        self._reserve_rows()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed * 1_000_003 + self._round)  # dropout
            for _ in range(self.config.steps_per_round):
                samples = self.buffer.sample(self.config.batch_size, rng, hold_out=hold_out)
                negatives = self._negatives(rng)
                batch = build_batch(
                    samples,
                    self.vectors,
                    self.config.max_history,
                    negatives,
                    exclude_history=self.config.exclude_history,
                )
                if batch is None:
                    continue
                if self.config.logq_correction:
                    batch = replace(batch, logq=self._log_expected(batch.rows[batch.cands]))
                self._optimizer.follow_table()
                self._optimizer.zero_grad()
                loss = contrastive_loss(self.adapter, batch, self.vectors)
                if self.config.anchor > 0:
                    loss = loss + self.config.anchor * self._drift()
                loss.backward()  # type: ignore[no-untyped-call]
                self._optimizer.step()
                losses.append(float(loss.detach()))
                rows += len(batch.label)
        self.adapter.eval()
        return losses, rows

    def _reserve_rows(self) -> None:
        """Grow the ID table now to every row this round can register: a round registers
        only cached items, so at most the registered and cached items together. A table
        that grew during a step would lose that step's update of it."""
        residual = self.adapter.item_residual
        if residual is not None:
            residual.reserve(1 + len(residual.ids.keys() | self.vectors.rows.keys()))

    def _negative_pools(self) -> tuple[int, npt.NDArray[np.int64]]:
        """How a step draws its negatives: (how many uniformly from every cached item, the
        named items' cache rows the rest come from uniformly). All of them come from every
        cached item while no item, or every one, is named."""
        count = self.config.negatives
        if self._seen_rows is None:
            rows = self.vectors.rows
            self._seen_rows = np.array(
                sorted(rows[i] for i in self._referenced if i in rows), dtype=np.int64
            )
        seen = self._seen_rows
        if len(seen) in (0, len(self.vectors)):
            return count, seen[:0]
        return round(count * self.config.catalog_negatives), seen

    def _negatives(self, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        """Cache rows of the step's shared negatives, drawn as `_negative_pools` says: a
        ``catalog_negatives`` share from every cached item, the rest from the items samples
        have named (the same thing when the trainer caches only those)."""
        wide, seen = self._negative_pools()
        named = self.config.negatives - wide
        return np.concatenate(
            [
                rng.integers(len(self.vectors), size=wide),
                seen[rng.integers(len(seen), size=named)] if named else seen[:0],
            ]
        )

    def _log_expected(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """log of each cache row's expected count among a step's candidates: as another
        row's target (batch size x its share of the targets seen) plus as a sampled
        negative (`_negative_pools`)."""
        total = max(1, self.samples_seen)  # every added sample counted one target
        ids = self.vectors.ids
        batch = np.array([self._targets[ids[int(r)]] for r in rows], dtype=np.float64)
        expected = self.config.batch_size * batch / total
        wide, seen = self._negative_pools()
        expected += wide / len(self.vectors)
        if len(seen):
            expected += np.isin(rows, seen) * (self.config.negatives - wide) / len(seen)
        return np.log(np.maximum(expected, 1e-12)).astype(np.float32)

    def _drift(self) -> torch.Tensor:
        """Squared distance of the anchored parameters from their starting point."""
        params = dict(self.adapter.named_parameters())
        terms = [
            (params[n] - start.to(params[n].device)).pow(2).sum()
            for n, start in self._anchor.items()
        ]
        return torch.stack(terms).sum()

    def _frozen_model(self, adapter: RecAdapter) -> RecAdapter:
        """An untrained adapter of ``adapter``'s shape (no ID table: it starts at zero),
        seeded like a fresh trainer's: what zero-shot serves."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            frozen = RecAdapter(replace(adapter.config, max_items=0))
        return frozen.to(adapter.moe.weight.device).eval()

    def _new_optimizer(self) -> AdapterOptimizer:
        return AdapterOptimizer(
            self.adapter,
            self.config.learning_rate,
            lazy_ids=self.config.lazy_ids,
            decay_learning_rate=self.config.decay_learning_rate,
            id_weight_decay=self.config.id_weight_decay,
            id_learning_rate=self.config.id_learning_rate,
        )

    def _restart_from_live(self) -> None:
        """The candidate becomes a copy of the live adapter again (fresh optimizer)."""
        self.adapter.load_state_dict(self.live.state_dict())
        self.adapter.load_scenarios(self.live.scenarios)
        self.adapter.load_items(self.live.items)
        self.adapter.version = self.live.version
        self._optimizer = self._new_optimizer()
        self._rejected_in_a_row = 0

    def _report(
        self,
        steps: int,
        losses: list[float],
        rows: int,
        started: float,
        accepted: bool = False,
        live_score: float = math.nan,
        candidate_score: float = math.nan,
        frozen_score: float = math.nan,
        gate_samples: int = 0,
    ) -> RoundReport:
        return RoundReport(
            version=self.live.version,
            steps=steps,
            loss=sum(losses) / len(losses) if losses else math.nan,
            samples_seen=self.samples_seen,
            rows=rows,
            seconds=time.perf_counter() - started,
            accepted=accepted,
            live_score=live_score,
            candidate_score=candidate_score,
            frozen_score=frozen_score,
            gate_samples=gate_samples,
        )


def _mean(gains: npt.NDArray[np.float64]) -> float:
    return float(gains.mean()) if len(gains) else math.nan
