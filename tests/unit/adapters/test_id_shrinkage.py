"""The ID residual's shrinkage: a row counts n / (n + c) of itself, n = times its item was
a training target; counts travel with a checkpoint; older checkpoints load unshrunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.unit.adapters.helpers import DIM, cfg, scramble, unit
from workers.adapters import RecAdapter, load_adapter, save_adapter
from workers.adapters.config import AdapterConfig
from workers.adapters.ids import ItemResidual
from workers.training import OnlineTrainer, Sample, TrainingConfig


def test_rows_weigh_by_how_often_their_item_was_a_target() -> None:
    table = ItemResidual(capacity=5, dim=DIM, shrinkage=2.0)
    with torch.no_grad():
        table.table.weight[1:] = torch.randn(4, DIM)
    table.observe(["a", "a", "b", "a"])  # a: 3 targets, b: 1
    rows = table.indices(["a", "b", "neg"])  # "neg" registered, never a target
    torch.testing.assert_close(table.weights(rows), torch.tensor([3 / 5, 1 / 3, 0.0]))
    out = table(rows)
    torch.testing.assert_close(out[0], table.table.weight[1] * 0.6)
    torch.testing.assert_close(out[1], table.table.weight[2] / 3)
    assert torch.equal(out[2], torch.zeros(DIM))
    out.sum().backward()
    grad = table.table.weight.grad
    assert grad is not None and torch.equal(grad[3], torch.zeros(DIM))  # nothing learned
    assert grad[1].abs().sum() > 0


def test_without_shrinkage_nothing_is_counted_or_stored() -> None:
    table = ItemResidual(capacity=5, dim=DIM, shrinkage=0.0)
    table.observe(["a"])
    assert table.ids == {} and "counts" not in table.state_dict()
    assert torch.equal(table.weights(torch.tensor([1, 2])), torch.ones(2))
    with pytest.raises(ValueError, match="shrinkage"):
        ItemResidual(capacity=5, dim=DIM, shrinkage=-1.0)
    with pytest.raises(ValueError, match="id_shrinkage"):
        AdapterConfig(id_shrinkage=-0.5)


def test_an_item_only_ever_a_negative_serves_its_text_projection() -> None:
    model = RecAdapter(cfg(max_items=8, id_shrinkage=5.0)).eval()
    scramble(model)
    model.observe_targets(["hit"] * 10)
    model.item_index("negative-only")  # what a batch's negative does: a row, count 0
    base = unit(torch.randn(2, DIM))
    served = model.item_vectors(["hit", "negative-only"], base, [None, None])
    text = model.item_vectors(["unknown-1", "unknown-2"], base, [None, None])
    assert torch.equal(served[1], text[1])
    assert (served[0] - text[0]).abs().max() > 1e-3  # 10 / 15 of its row


def test_counts_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    model = RecAdapter(cfg(max_items=8, id_shrinkage=3.0))
    scramble(model)
    model.observe_targets(["a", "b", "a"])
    save_adapter(model, tmp_path, 2)
    loaded = load_adapter(tmp_path / "v000002")
    base = unit(torch.randn(3, DIM))
    ids = ["a", "b", "c"]
    assert torch.equal(
        loaded.item_vectors(ids, base, [None] * 3), model.item_vectors(ids, base, [None] * 3)
    )
    # a checkpoint from before the field existed (no key, no counts) loads unshrunk
    plain = RecAdapter(cfg(max_items=8, id_shrinkage=0.0))
    save_adapter(plain, tmp_path / "old", 1)
    config_file = tmp_path / "old" / "v000001" / "adapter_config.json"
    meta = json.loads(config_file.read_text())
    del meta["config"]["id_shrinkage"]
    config_file.write_text(json.dumps(meta))
    old = load_adapter(tmp_path / "old" / "v000001")
    assert old.config.id_shrinkage == 0.0


def test_the_trainer_counts_each_added_sample_s_target() -> None:
    adapter = RecAdapter(cfg(max_items=8, id_shrinkage=1.0))
    trainer = OnlineTrainer(TrainingConfig(), adapter)
    trainer.add([Sample(("a",), "b"), Sample(("a", "b"), "c"), Sample(("b",), "c")])
    residual = adapter.item_residual
    assert residual is not None
    rows = residual.indices(["a", "b", "c"], register=False)
    torch.testing.assert_close(residual.weights(rows), torch.tensor([0.0, 1 / 2, 2 / 3]))
