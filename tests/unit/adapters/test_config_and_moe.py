"""Adapter config validation, the whitened MoE projection and scenario gates."""

from __future__ import annotations

import json

import pytest
import torch

from tests.unit.adapters.helpers import DIM, cfg, scramble, training_loss, unit, user_vectors
from workers.adapters import (
    AdapterConfig,
    RecAdapter,
)
from workers.adapters.config import LEGACY
from workers.training import TrainingConfig

# -- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dim", 0),
        ("dim", 3.0),
        ("dim", True),
        ("out_dim", -1),
        ("n_experts", 0),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", float("nan")),
        ("temperature", 0.0),
        ("temperature", float("inf")),
        ("scenario_experts", 1),
        ("max_scenarios", 0),
        ("aggregator", "lstm"),
        ("max_history", 0),
        ("recency", 1.0),
        ("recency", 0.0),
        ("init_noise", -0.5),
        ("max_items", -1),
    ],
)
def test_config_rejects_each_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AdapterConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_resolve_and_round_trip_through_json() -> None:
    config = AdapterConfig(dim=32, aggregator="gru", scenario_experts=False)
    assert config.out_dim == 32 and config.out_features == 32
    back = AdapterConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config
    with pytest.raises(ValueError, match="unknown"):
        AdapterConfig.from_dict({**config.to_dict(), "rank": 4})


def test_a_new_adapter_gets_todays_defaults_and_a_checkpoint_its_own() -> None:
    """A field added later (`LEGACY`) is off only for checkpoints written before it: a
    fresh adapter from the trainer's settings gets the default (in sessions 10 to 13 it
    got the legacy value, so the ID shrinkage chosen as the default never ran)."""
    fresh = TrainingConfig().adapter_config()
    assert fresh == AdapterConfig(max_history=TrainingConfig().max_history)
    assert fresh.id_shrinkage == AdapterConfig().id_shrinkage > 0
    old = {k: v for k, v in fresh.to_dict().items() if k not in LEGACY}
    assert AdapterConfig.from_checkpoint(old).id_shrinkage == LEGACY["id_shrinkage"]
    assert AdapterConfig.from_checkpoint(fresh.to_dict()) == fresh


def test_every_config_field_has_help() -> None:
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(AdapterConfig))


# -- whitened MoE ------------------------------------------------------------------------


@pytest.mark.parametrize("n_experts", [1, 8])
def test_init_is_close_to_identity(n_experts: int) -> None:
    model = RecAdapter(AdapterConfig(dim=384, n_experts=n_experts)).eval()
    base = unit(torch.randn(64, 384))
    with torch.no_grad():
        cos = (model.project(base) * base).sum(-1)
    assert float(cos.min()) >= 0.99
    # ... but not exactly: the experts are perturbed, differently (symmetry breaking)
    assert float(cos.max()) < 1.0 - 1e-5
    assert n_experts == 1 or not torch.allclose(model.moe.weight[0], model.moe.weight[1])


def test_project_shapes_dtype_norm_and_out_dim() -> None:
    model = RecAdapter(cfg(out_dim=7)).eval()
    base = torch.randn(10, DIM, dtype=torch.float64)
    out = model.project(base)
    assert out.shape == (10, 7) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(10))
    assert model.project(torch.zeros(0, DIM)).shape == (0, 7)
    with pytest.raises(ValueError, match="base"):
        model.project(torch.randn(4, DIM + 1))
    with pytest.raises(ValueError, match="scenario"):
        model.project(torch.randn(4, DIM), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="scenario"):
        model.project(torch.randn(4, DIM), 5)


def test_project_never_mutates_its_input() -> None:
    model = RecAdapter(cfg(dropout=0.5)).train()
    scramble(model)
    base = torch.randn(20, DIM) * 3.0  # not unit: normalising in place would show
    history = torch.randn(2, 4, DIM)
    kept, kept_history = base.clone(), history.clone()
    model.project(base, 2).sum().backward()
    user_vectors(model, history, torch.ones(2, 4, dtype=torch.bool), 1)
    assert torch.equal(base, kept) and torch.equal(history, kept_history)


def test_unknown_scenario_is_exactly_shared_until_its_gate_trains() -> None:
    model = RecAdapter(cfg()).eval()
    scramble(model.moe.gate)
    base = unit(torch.randn(12, DIM))
    books = model.scenario_index("books")
    with torch.no_grad():
        shared = model.project(base, 0)
        assert torch.equal(model.project(base, books), shared)
        assert torch.equal(model.project(base, model.scenario_index("never-seen")), shared)

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    history = unit(torch.randn(8, 3, DIM))
    mixed = ["shared", "books"] * 4  # the shared rows train the shared part only
    for _ in range(5):
        opt.zero_grad()
        training_loss(model, history, unit(torch.randn(8, DIM)), None, mixed).backward()
        opt.step()
    model.eval()
    assert model.moe.scenario_gate is not None
    assert torch.equal(model.moe.scenario_gate.weight[0], torch.zeros(3))  # shared row frozen
    with torch.no_grad():
        shared = model.project(base, 0)
        assert (model.project(base, books) - shared).abs().max() > 1e-3
        assert torch.equal(model.project(base, model.scenario_index("music")), shared)


def test_without_scenario_experts_the_scenario_is_ignored() -> None:
    model = RecAdapter(cfg(scenario_experts=False)).eval()
    assert model.moe.scenario_gate is None
    assert model.scenario_index("books") == 0 and model.scenarios == {}
    base = unit(torch.randn(5, DIM))
    assert torch.equal(model.project(base, 3), model.project(base, 0))


def test_scenario_map_is_stable_and_bounded() -> None:
    model = RecAdapter(cfg(max_scenarios=3))
    assert model.scenario_index("shared") == 0 and model.scenario_index(None) == 0
    assert model.scenario_index("books", register=False) == 0
    assert model.scenario_index("books") == 1
    assert model.scenario_index("music") == 2
    assert model.scenario_index("books") == 1
    assert model.scenario_index("films") == 0  # capacity 3 = shared + 2
    assert model.scenarios == {"books": 1, "music": 2}
    assert model.scenario_indices(["music", "x", "books"]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="scenario map"):
        model.load_scenarios({"a": 1, "b": 3})


# -- aggregators -------------------------------------------------------------------------
