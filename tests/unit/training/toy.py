"""A toy catalog where the next item is a fixed function of the last one."""

from __future__ import annotations

import numpy as np

from workers.adapters import RecAdapter
from workers.training import OnlineTrainer, Sample, TrainingConfig

DIM = 16


def catalog(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return {f"i{k}": vectors[k] for k in range(n)}


def successor(item: str, n: int = 40) -> str:
    """The hidden rule: i_k -> i_{7k + 3 mod n} (unrelated to the text vectors)."""
    return f"i{(7 * int(item[1:]) + 3) % n}"


def samples(count: int, seed: int, n: int = 40, length: int = 3) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        history = [f"i{int(rng.integers(n))}"]
        while len(history) < length + 1:
            history.append(successor(history[-1], n))
        out.append(Sample(tuple(history[:-1]), history[-1], "default"))
    return out


def config(**kw: object) -> TrainingConfig:
    base: dict[str, object] = {
        "train_every_samples": 50,
        "train_every_seconds": 10.0,
        "steps_per_round": 5,
        "batch_size": 32,
        "negatives": 8,
        "learning_rate": 0.01,
        "buffer_size": 1000,
        "max_history": 5,
        "gate": False,  # the gate has its own tests (test_gate.py)
        "adapter": {"n_experts": 2, "dropout": 0.0, "aggregator": "attention", "max_items": 64},
    }
    base.update(kw)
    return TrainingConfig.model_validate(base)


def trainer(**kw: object) -> OnlineTrainer:
    cfg = config(**kw)
    return OnlineTrainer(cfg, RecAdapter(cfg.adapter_config(DIM)))
