"""The trainer's ID table grows with the items it registers and learns what a table of
full size from the start learns (the optimizer follows each new table, moments kept)."""

from __future__ import annotations

import copy

import pytest
import torch

import workers.adapters.ids
from tests.unit.training import toy
from workers.adapters import RecAdapter
from workers.training import OnlineTrainer


def _rounds(trainer: OnlineTrainer) -> None:
    """Three rounds; the catalog the trainer knows grows between them (as items arrive)."""
    vectors = toy.catalog(40)
    for round_, known in enumerate((6, 20, 40)):
        ids = [f"i{k}" for k in range(known)]
        trainer.add_base_vectors({i: vectors[i] for i in ids}, dict.fromkeys(ids, "default"))
        trainer.add(toy.samples(50, seed=round_))
        assert trainer.train_round(float(round_)).steps > 0


@pytest.mark.parametrize("lazy_ids", [True, False])
def test_a_growing_table_learns_what_a_full_one_learns(
    monkeypatch: pytest.MonkeyPatch, lazy_ids: bool
) -> None:
    """Dense Adam's moments and SparseAdam's (whose step count is an int) follow the
    table as it grows."""
    monkeypatch.setattr(workers.adapters.ids, "INITIAL_ROWS", 4)
    adapter = {"n_experts": 2, "dropout": 0.0, "aggregator": "attention", "max_items": 256}
    decay = 0.0 if lazy_ids else 1.0  # SparseAdam has no decay; the dense rows decay
    config = toy.config(
        gate=True, gate_samples=10, lazy_ids=lazy_ids, id_weight_decay=decay, adapter=adapter
    )
    torch.manual_seed(0)
    growing = RecAdapter(config.adapter_config(toy.DIM))
    full = copy.deepcopy(growing)
    residual, full_residual = growing.item_residual, full.item_residual
    assert residual is not None and full_residual is not None
    assert residual.rows == 4
    full_residual.reserve(full_residual.capacity)
    grown: list[int] = []
    real_resize = residual._resize

    def spy(rows: int) -> None:
        grown.append(rows)
        real_resize(rows)

    monkeypatch.setattr(residual, "_resize", spy)
    a, b = OnlineTrainer(config, growing), OnlineTrainer(config, full)
    _rounds(a)
    _rounds(b)
    assert grown and residual.rows < full_residual.rows == 256  # it grew, and stayed smaller
    assert residual.ids == full_residual.ids and len(residual.ids) > 4
    used = len(residual.ids) + 1
    torch.testing.assert_close(residual.table.weight[:used], full_residual.table.weight[:used])
    assert residual.table.weight[1:used].abs().sum() > 0  # the rows did learn
    for (name, x), (_, y) in zip(growing.named_parameters(), full.named_parameters(), strict=True):
        if not name.startswith("item_residual"):
            torch.testing.assert_close(x, y, msg=name)
    assert a.live.version == b.live.version and a.rejected == b.rejected


def test_loading_a_state_dict_takes_its_rows_within_the_capacity() -> None:
    small = RecAdapter(toy.config().adapter_config(toy.DIM))
    small.item_indices(["a", "b"])
    residual = small.item_residual
    assert residual is not None
    other = RecAdapter(toy.config().adapter_config(toy.DIM))
    other.load_state_dict(
        {k: v[:3] if k.startswith("item_residual") else v for k, v in small.state_dict().items()}
    )
    assert other.item_residual is not None and other.item_residual.rows == 3
    too_big = {k: v for k, v in small.state_dict().items()}
    too_big["item_residual.table.weight"] = torch.zeros(65, residual.table.weight.shape[1])
    with pytest.raises(ValueError, match="capacity 64"):
        other.load_state_dict(too_big)
