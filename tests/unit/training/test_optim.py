"""The trainer's optimizer: fused Adam's update, lazy ID rows, the recency slope's rate, the
ID rows' decay."""

from __future__ import annotations

import copy

import pytest
import torch

from workers.adapters import AdapterConfig, RecAdapter
from workers.training.config import TrainingConfig
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
            loss.backward()
            optimizer.step()
        return float(model.aggregator.decay.detach()) - start

    shared, own = moved(None), moved(1e-2)
    assert 0 < shared < own
    assert own > 5 * shared


def test_id_weight_decay_pulls_rows_toward_the_text_projection_and_nothing_else() -> None:
    """A row with a value but no gradient shrinks by exactly 1 - lr * w per step; rows and
    parameters the decay does not reach (w = 0, the rest of the adapter) move as Adam's."""

    def one_step(decay: float) -> RecAdapter:
        torch.manual_seed(0)
        model = RecAdapter(AdapterConfig(dim=16, n_experts=1, max_items=64, id_shrinkage=0.0))
        rows = model.item_indices(["a", "b"])
        assert model.item_residual is not None
        with torch.no_grad():
            model.item_residual.table.weight[int(rows[0])] = 1.0
        optimizer = AdapterOptimizer(model, 1e-2, id_weight_decay=decay)
        optimizer.zero_grad()
        model.project(torch.randn(1, 16), 0, rows[1:]).sum().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return model

    plain, decayed = one_step(0.0), one_step(5.0)
    assert plain.item_residual is not None and decayed.item_residual is not None
    table, plain_table = decayed.item_residual.table.weight, plain.item_residual.table.weight
    assert torch.equal(plain_table[1], torch.ones(16))
    torch.testing.assert_close(table[1], torch.full((16,), 1 - 1e-2 * 5.0))
    torch.testing.assert_close(table[2], plain_table[2])
    assert not torch.equal(table[2], torch.zeros(16))  # row "b" did learn
    torch.testing.assert_close(decayed.moe.weight, plain.moe.weight)


def test_id_weight_decay_is_refused_with_lazy_rows() -> None:
    model = RecAdapter(AdapterConfig(dim=16, n_experts=1, max_items=64))
    with pytest.raises(ValueError, match="lazy_ids"):
        AdapterOptimizer(model, 1e-3, lazy_ids=True, id_weight_decay=1.0)
    with pytest.raises(ValueError, match="lazy_ids"):
        TrainingConfig(lazy_ids=True, id_weight_decay=1.0)


@pytest.mark.parametrize("lazy", [False, True])
def test_the_id_rows_can_learn_at_their_own_rate(lazy: bool) -> None:
    """One step from zero moments moves each touched coordinate by about its rate (Adam),
    so the rows move 10x as far at 10x the rate; the rest of the adapter is unchanged."""

    def one_step(rate: float | None) -> RecAdapter:
        torch.manual_seed(0)
        model = RecAdapter(AdapterConfig(dim=16, n_experts=1, max_items=64, id_shrinkage=0.0))
        rows = model.item_indices(["a"])
        optimizer = AdapterOptimizer(model, 1e-3, lazy_ids=lazy, id_learning_rate=rate)
        optimizer.zero_grad()
        model.project(torch.randn(1, 16), 0, rows).sum().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return model

    shared, own = one_step(None), one_step(1e-2)
    assert shared.item_residual is not None and own.item_residual is not None
    row_shared = shared.item_residual.table.weight[1].detach()
    row_own = own.item_residual.table.weight[1].detach()
    torch.testing.assert_close(row_own, 10 * row_shared, rtol=1e-3, atol=1e-7)
    assert float(row_shared.abs().max()) > 0
    torch.testing.assert_close(own.moe.weight, shared.moe.weight)
