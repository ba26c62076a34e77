"""The trainer's contrastive loss and a short training run against the frozen cosine."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit.adapters.helpers import DIM, cfg, scramble, training_loss, unit, user_vectors
from workers.adapters import AdapterConfig, RecAdapter


def test_the_training_loss_is_infonce_over_the_batch_s_items_and_sampled_negatives() -> None:
    model = RecAdapter(cfg(aggregator="mean", temperature=0.5, max_items=0)).eval()
    scramble(model)
    history, pos, neg = torch.randn(4, 3, DIM), torch.randn(4, DIM), torch.randn(2, DIM)
    names = ["books", "shared", "books", "music"]
    pos[2] = pos[0]  # rows 0 and 2 share their next item: one candidate, not a negative
    idx = model.scenario_indices(names)  # every row's items go through its own scenario
    with torch.no_grad():
        users, p = user_vectors(model, history, None, idx), model.project(pos, idx)
        cands = torch.cat([p[[0, 1, 3]], model.project(neg, 0)])
        own = [0, 1, 0, 2]
        expected = 0.0
        for i in range(4):
            logits = (users[i] @ cands.T) / 0.5
            expected -= float(torch.log_softmax(logits, 0)[own[i]]) / 4
        got = float(training_loss(model, history, pos, neg, names))
        assert math.isclose(got, expected, rel_tol=1e-5)
        assert float(training_loss(model, history, pos, None, names)) < got  # more negatives


def synthetic_task(
    seed: int, n_items: int = 300, signal: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Catalog where raw cosine fails: DIM - signal nuisance coordinates dominate.

    The next item of a history is the catalog item nearest to P @ mean(history), P the
    projection on the `signal` coordinates (a fixed linear map), history excluded.
    """
    g = torch.Generator().manual_seed(seed)
    sig = torch.randn(n_items, signal, generator=g)
    noise = (
        torch.randn(n_items, DIM - signal, generator=g) * 2.0 / math.sqrt((DIM - signal) / signal)
    )
    items = unit(torch.cat([sig, noise], 1))
    keep = torch.zeros(DIM)
    keep[:signal] = 1.0
    return items, keep


def task_batch(
    items: torch.Tensor, keep: torch.Tensor, g: torch.Generator, b: int, length: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> history (b, L, DIM), history ids (b, L), next item ids (b,)"""
    ids = torch.randint(0, items.shape[0], (b, length), generator=g)
    query = unit(items[ids].mean(1) * keep)
    scores = query @ unit(items * keep).T
    return items[ids], ids, scores.scatter(1, ids, float("-inf")).argmax(1)


def top1(
    users: torch.Tensor, catalog: torch.Tensor, seen: torch.Tensor, target: torch.Tensor
) -> float:
    scores = (users @ catalog.T).scatter(1, seen, float("-inf"))
    return float((scores.argmax(1) == target).float().mean())


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_training_beats_the_frozen_cosine(kind: str) -> None:
    items, keep = synthetic_task(seed=1)
    g = torch.Generator().manual_seed(2)
    history, seen, target = task_batch(items, keep, g, 400)
    raw = top1(unit(history.mean(1)), items, seen, target)
    model = RecAdapter(cfg(aggregator=kind, n_experts=4))

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            users = user_vectors(model, history)
            acc = top1(users, model.project(items), seen, target)
            return float(training_loss(model, history, items[target])), acc

    loss0, acc0 = evaluate()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        model.train()
        h, _, t = task_batch(items, keep, g, 128)
        opt.zero_grad()
        training_loss(model, h, items[t]).backward()
        opt.step()
    loss1, acc1 = evaluate()
    assert raw < 0.1 and acc0 < 0.1  # the frozen space really fails here
    assert loss1 < 0.6 * loss0
    assert acc1 > max(acc0, raw) + 0.15  # ~0.03 -> ~0.3 (deterministic seeds)


# -- save / load -------------------------------------------------------------------------


def test_id_dropout_trains_some_items_as_if_cold_and_never_touches_serving() -> None:
    adapter = RecAdapter(
        AdapterConfig(
            dim=DIM, max_items=64, id_dropout=0.5, id_shrinkage=0.0, n_experts=1, dropout=0.0
        )
    )
    with torch.no_grad():
        adapter.item_residual.table.weight[1:].normal_()  # type: ignore[union-attr]
    base = unit(torch.randn(400, DIM))
    rows = adapter.item_indices([f"i{n % 60}" for n in range(400)])
    text = adapter.project(base)  # no rows: text only
    adapter.eval()
    served = adapter.project(base, items=rows)
    assert torch.equal(served, adapter.project(base, items=rows))  # deterministic
    assert not torch.isclose(served, text).all(dim=1).any()  # every row has its ID part
    adapter.train()
    torch.manual_seed(0)
    trained = adapter.project(base, items=rows)
    as_text = torch.isclose(trained, text, atol=1e-6).all(dim=1)
    assert 0.35 < float(as_text.float().mean()) < 0.65  # about half went text only
    with pytest.raises(ValueError, match="id_dropout"):
        AdapterConfig(dim=DIM, id_dropout=1.0)
