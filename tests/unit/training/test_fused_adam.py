"""The trainer's fused Adam makes the update torch's default Adam makes."""

from __future__ import annotations

import copy

import torch

from workers.adapters import AdapterConfig, RecAdapter
from workers.training.trainer import adam


def test_the_fused_adam_updates_the_adapter_as_the_default_adam_does() -> None:
    torch.manual_seed(0)
    fused_adapter = RecAdapter(AdapterConfig(dim=16, n_experts=2, max_items=64, max_history=5))
    plain_adapter = copy.deepcopy(fused_adapter)
    start = copy.deepcopy(fused_adapter)
    fused = adam(fused_adapter, 1e-2)
    plain = torch.optim.Adam(plain_adapter.parameters(), lr=1e-2, foreach=False, fused=False)
    assert fused.defaults["fused"]
    for step in range(5):
        gen = torch.Generator().manual_seed(step)
        for a, b in zip(fused_adapter.parameters(), plain_adapter.parameters(), strict=True):
            grad = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = grad.clone(), grad.clone()
        fused.step()
        plain.step()
    pairs = zip(fused_adapter.named_parameters(), plain_adapter.parameters(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    residual = fused_adapter.item_residual
    assert residual is not None and start.item_residual is not None
    assert not torch.allclose(residual.table.weight, start.item_residual.table.weight)
