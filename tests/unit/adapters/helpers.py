"""Shared helpers for the adapter tests."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workers.adapters import SHARED, AdapterConfig, RecAdapter
from workers.training import Sample
from workers.training.batch import build_batch, contrastive_loss
from workers.training.catalog import BaseVectors

DIM = 16


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def cfg(**kw: object) -> AdapterConfig:
    base: dict[str, object] = {"dim": DIM, "n_experts": 3, "max_scenarios": 5, "dropout": 0.0}
    base.update(kw)
    return AdapterConfig(**base)  # type: ignore[arg-type]


@torch.no_grad()
def scramble(model: torch.nn.Module, scale: float = 0.3) -> None:
    """Move every parameter away from its init (so equalities below are not luck)."""
    for p in model.parameters():
        p.add_(scale * torch.randn_like(p))


def user_vectors(
    model: RecAdapter,
    history: torch.Tensor,
    mask: torch.Tensor | None = None,
    scenario: int | torch.Tensor = 0,
) -> torch.Tensor:
    """(b, L, dim) history base vectors, each row's items through its scenario -> (b, out)
    unit user vectors: what the trainer computes for a sample (projection + aggregator)."""
    b, length, dim = history.shape
    idx = torch.as_tensor(scenario, dtype=torch.long).expand(b)
    items = model.project(history.reshape(b * length, dim), idx.repeat_interleave(length))
    out: torch.Tensor = model.aggregator(items.reshape(b, length, -1), mask)
    return out


def training_loss(
    model: RecAdapter,
    history: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    scenarios: list[str] | None = None,
) -> torch.Tensor:
    """The trainer's loss (`contrastive_loss`) over tensors: history (b, L, dim),
    positives (b, dim) and negatives (m, dim) base vectors become cached catalog items
    (equal vectors share an id, so a repeated next item is not its own negative);
    ``scenarios`` names each row's scenario (its history and positive items')."""
    b, length, dim = history.shape
    names = scenarios or [SHARED] * b
    cache = BaseVectors(dim)
    ids: dict[bytes, str] = {}

    def item(vector: torch.Tensor, scenario: str) -> str:
        key = vector.detach().numpy().tobytes() + scenario.encode()
        if key not in ids:
            ids[key] = f"i{len(ids)}"
            cache.add({ids[key]: vector.detach().numpy()}, {ids[key]: scenario})
        return ids[key]

    samples = [
        Sample(
            tuple(item(history[r, t], names[r]) for t in range(length)),
            item(positives[r], names[r]),
            names[r],
        )
        for r in range(b)
    ]
    extra = [] if negatives is None else [item(n, SHARED) for n in negatives]
    rows = np.array([cache.rows[i] for i in extra], dtype=np.int64)
    batch = build_batch(samples, cache, length, rows)
    assert batch is not None
    return contrastive_loss(model, batch, cache)
