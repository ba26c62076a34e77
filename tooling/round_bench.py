"""What one online-training round costs, and where it goes (no Ray, no Kafka).

    python -m tooling.round_bench [--items 1682] [--rounds 8] [--threads 1]

An `OnlineTrainer` with the default `TrainingConfig` (the adapter the pipeline trains:
16,384-row ID residual, 10 steps of 256 samples and 1,024 negatives, the gate on) over
``--items`` random unit base vectors; each round gets 1,000 new samples (histories of
20 items), as a round is due every 1,000 samples in a firehose. Prints the median
seconds per round and the shares of the optimizer's steps, the forward/backward passes
and the gate, from cProfile, for the fused Adam the trainer uses and for torch's
default (single-tensor on the CPU) Adam, in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from workers.adapters import RecAdapter
from workers.training import OnlineTrainer, Sample, TrainingConfig

DIM = 384
PER_ROUND = 1000


def _samples(rng: np.random.Generator, items: int, count: int) -> list[Sample]:
    picks = rng.integers(items, size=(count, 21))
    return [Sample(tuple(f"i{k}" for k in row[:-1]), f"i{row[-1]}", "default") for row in picks]


def _trainer(items: int, optimizer: str) -> OnlineTrainer:
    config = TrainingConfig()
    torch.manual_seed(0)
    trainer = OnlineTrainer(config, RecAdapter(config.adapter_config(DIM)))
    if optimizer == "default":  # torch's CPU default: single-tensor (the trainer's: fused)
        groups = [
            {k: g[k] for k in ("params", "lr", "weight_decay")}
            for g in trainer._optimizer.dense.param_groups
        ]
        trainer._optimizer.dense = torch.optim.AdamW(groups, fused=False, foreach=False)
    base = np.random.default_rng(0).standard_normal((items, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    ids = [f"i{k}" for k in range(items)]
    trainer.add_base_vectors(dict(zip(ids, base, strict=True)), dict.fromkeys(ids, "default"))
    return trainer


def _share(stats: pstats.Stats, match: Callable[[str, str], bool]) -> float:
    """Cumulative seconds of the profiled functions ``match(file, name)`` accepts."""
    entries = stats.stats  # type: ignore[attr-defined]
    return float(sum(v[3] for (f, _, name), v in entries.items() if match(f, name)))


def measure(items: int, rounds: int, optimizer: str) -> dict[str, float]:
    """Median seconds per round and the profiled shares of ``rounds`` rounds."""
    trainer = _trainer(items, optimizer)
    rng = np.random.default_rng(1)
    trainer.add(_samples(rng, items, 5 * PER_ROUND))
    trainer.train_round(0.0)  # warm-up (first allocations)
    spent: list[float] = []
    profile = cProfile.Profile()
    for n in range(rounds):
        trainer.add(_samples(rng, items, PER_ROUND))
        started = time.perf_counter()
        profile.enable()
        trainer.train_round(float(n + 1))
        profile.disable()
        spent.append(time.perf_counter() - started)
    stats = pstats.Stats(profile)
    total = _share(stats, lambda f, name: name == "train_round")
    return {
        "seconds_per_round": statistics.median(spent),
        "optimizer": _share(stats, lambda f, name: name == "step" and "optim" in f) / total,
        "backward": _share(stats, lambda f, name: name == "backward" and "autograd" in f) / total,
        "gate": _share(stats, lambda f, name: name == "prequential_gains") / total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.items} items, {PER_ROUND} new samples a round, {args.threads} thread(s)")
    for optimizer in ("fused", "default"):
        m = measure(args.items, args.rounds, optimizer)
        print(
            f"{optimizer:>8} Adam: {m['seconds_per_round']:.3f} s a round "
            f"({m['seconds_per_round'] / PER_ROUND * 1000:.2f} ms a sample); "
            f"optimizer {m['optimizer']:.0%}, backward {m['backward']:.0%}, gate {m['gate']:.0%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
