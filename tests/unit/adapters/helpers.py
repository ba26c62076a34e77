"""Shared helpers for the adapter tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workers.adapters import AdapterConfig

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
