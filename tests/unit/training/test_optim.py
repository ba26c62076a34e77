"""The trainer's optimizer: fused Adam's update, lazy ID rows, the recency slope's rate."""

from __future__ import annotations

import copy

import torch

from workers.adapters import AdapterConfig, RecAdapter
from workers.training.optim import AdapterOptimizer


def test_the_fused_adam_updates_the_adapter_as_the_default_adam_does() -> None:
    torch.manual_seed(0)
    fused_adapter = RecAdapter(AdapterConfig(dim=16, n_experts=2, max_items=64, max_history=5))
    plain_adapter = copy.deepcopy(fused_adapter)
    start = copy.deepcopy(fused_adapter)
    fused = AdapterOptimizer(fused_adapter, 1e-2).dense
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


def test_lazy_ids_move_only_the_rows_a_step_touched() -> None:
    """Dense Adam keeps moving a row by its momentum after its last gradient; lazy does not,
    and it trains the rest of the adapter as the dense one does."""

    def run(lazy: bool) -> tuple[RecAdapter, RecAdapter]:
        torch.manual_seed(0)
        model = RecAdapter(AdapterConfig(dim=16, n_experts=1, max_items=64, id_shrinkage=0.0))
        rows = model.item_indices(["a", "b"])  # rows 1 and 2
        optimizer = AdapterOptimizer(model, 1e-2, lazy_ids=lazy)
        base = torch.randn(2, 16)
        for step in range(3):
            optimizer.follow_table()
            optimizer.zero_grad()
            used = rows if step == 0 else rows[:1]  # "b" only in the first step
            loss = model.project(base[: len(used)], 0, used).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if step == 0:
                after_first = copy.deepcopy(model)
        return after_first, model

    for lazy in (False, True):
        first, last = run(lazy)
        assert first.item_residual is not None and last.item_residual is not None
        b_first, b_last = first.item_residual.table.weight[2], last.item_residual.table.weight[2]
        assert torch.equal(b_first, b_last) == lazy
        assert not torch.equal(
            first.item_residual.table.weight[1], last.item_residual.table.weight[1]
        )
    dense_model, lazy_model = run(False)[1], run(True)[1]
    torch.testing.assert_close(dense_model.moe.weight, lazy_model.moe.weight)


def test_the_recency_slope_can_learn_at_its_own_rate() -> None:
    def moved(rate: float | None) -> float:
        torch.manual_seed(0)
        model = RecAdapter(AdapterConfig(dim=16, n_experts=1, max_items=0, dropout=0.0))
        start = float(model.aggregator.decay.detach())
        optimizer = AdapterOptimizer(model, 1e-3, decay_learning_rate=rate)
        items = torch.nn.functional.normalize(torch.randn(8, 5, 16), dim=-1)
        for _ in range(20):  # the loss wants the newest item only: the slope must grow
            optimizer.zero_grad()
            users = model.aggregator(items)
            loss = -(users * items[:, -1]).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        return float(model.aggregator.decay.detach()) - start

    shared, own = moved(None), moved(1e-2)
    assert 0 < shared < own
    assert own > 5 * shared
