"""Online adapters: config, whitened MoE, aggregators (batch vs incremental), io, training."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workers import adapters
from workers.adapters import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    AdapterConfig,
    RecAdapter,
    SequenceAggregator,
    latest_version,
    load_adapter,
    load_latest,
    save_adapter,
    version_dir,
)
from workers.user_math import fold

DIM = 16


@pytest.fixture(autouse=True)
def _small_tensors() -> Iterator[None]:
    # These tensors are tiny: intra-op threads cost more than they save (and make a
    # loaded CI box 10x slower). Seeded so every test is deterministic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


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
    model.user(history, torch.ones(2, 4, dtype=torch.bool), 1)
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
    mixed = torch.tensor([0, books] * 4)  # the shared rows train the shared part only
    for _ in range(5):
        opt.zero_grad()
        model.loss(history, None, unit(torch.randn(8, DIM)), scenario=mixed).backward()
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


def fold_steps(agg: SequenceAggregator, items: torch.Tensor) -> torch.Tensor:
    """(b, L, d) -> (b, state_size), one `step` per event."""
    state = agg.initial_state(items.shape[0])
    for t in range(items.shape[1]):
        state = agg.step(state, items[:, t])
    return state


def left_padded(items: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the last lengths[i] items of row i at the right end; NaN in the padding."""
    b, length, _ = items.shape
    mask = (
        torch.arange(length).expand(b, length)
        >= torch.tensor([length - n for n in lengths])[:, None]
    )
    return torch.where(mask[..., None], items, torch.full_like(items, float("nan"))), mask


def test_mean_incremental_equals_masked_mean() -> None:
    agg = SequenceAggregator(DIM, "mean", max_history=50, recency=0.9)
    items = unit(torch.randn(3, 6, DIM))
    padded, mask = left_padded(items, [6, 2, 1])
    expected = torch.stack([items[0].mean(0), items[1, 4:].mean(0), items[2, 5]])
    torch.testing.assert_close(agg(padded, mask), unit(expected))
    for row, n in enumerate([6, 2, 1]):
        state = fold_steps(agg, items[row : row + 1, 6 - n :])
        torch.testing.assert_close(state[0, :DIM] / state[0, DIM], expected[row])
        torch.testing.assert_close(agg.readout(state)[0], unit(expected[row]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["attention", "gru"])
def test_incremental_equals_full_recompute(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.8)
    scramble(agg, 0.5)
    items = unit(torch.randn(4, 9, DIM))
    padded, mask = left_padded(items, [9, 5, 1, 0])
    with torch.no_grad():
        batch = agg(padded, mask)
        for row, n in enumerate([9, 5, 1]):
            state = fold_steps(agg, items[row : row + 1, 9 - n :])
            torch.testing.assert_close(agg.readout(state)[0], batch[row], atol=1e-5, rtol=0)
    assert torch.equal(batch[3], torch.zeros(DIM))  # empty history: zero, not NaN


def test_attention_weights_are_softmax_of_query_score_minus_linear_recency() -> None:
    agg = SequenceAggregator(DIM, "attention", max_history=50, recency=0.7)
    scramble(agg, 1.0)
    items = unit(torch.randn(1, 5, DIM))
    with torch.no_grad():
        ages = torch.arange(4, -1, -1, dtype=torch.float32)
        w = torch.softmax(items[0] @ agg.query - agg.decay * ages, 0)  # type: ignore[operator]
        state = fold_steps(agg, items)
        torch.testing.assert_close(state[0, :DIM] / state[0, DIM], w @ items[0])
        torch.testing.assert_close(agg(items)[0], unit(w @ items[0]))


@pytest.mark.parametrize("kind", ["attention", "gru"])
def test_init_aggregators_follow_the_frozen_decayed_fold(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.9)
    items = unit(torch.randn(1, 12, DIM))
    folded = None
    for x in items[0].numpy():
        folded = fold(folded, x, 1.0, 0.9)  # the adapter-free recommender's user vector
    assert folded is not None
    expected = torch.from_numpy(folded / np.linalg.norm(folded))
    with torch.no_grad():
        got = agg(items)[0]
    if kind == "attention":  # zero query: exactly the decayed fold
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    else:  # tanh(x) ~ x for the small coordinates of a unit vector
        assert float(got @ expected) >= 0.99


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_batch_path_reads_only_max_history_most_recent(kind: str) -> None:
    agg = SequenceAggregator(DIM, kind, max_history=3, recency=0.5)
    scramble(agg, 0.5)
    items = unit(torch.randn(2, 7, DIM))
    with torch.no_grad():
        torch.testing.assert_close(agg(items), agg(items[:, -3:]))
        # the never-windowed incremental state differs once the history is longer
        assert (agg.readout(fold_steps(agg, items)) - agg(items)).abs().max() > 1e-4


def test_step_is_pure() -> None:
    for kind in ("mean", "attention", "gru"):
        agg = SequenceAggregator(DIM, kind, max_history=50, recency=0.9)
        state = agg.step(agg.initial_state(2), unit(torch.randn(2, DIM)))
        kept = state.clone()
        agg.step(state, unit(torch.randn(2, DIM)))
        assert torch.equal(state, kept) and state.shape == (2, agg.state_size)


def test_model_step_matches_user() -> None:
    model = RecAdapter(cfg(aggregator="attention")).eval()
    scramble(model)
    history = torch.randn(3, 6, DIM)
    books = model.scenario_index("books")
    with torch.no_grad():
        state = model.initial_state(3)
        for t in range(6):
            state = model.step(state, history[:, t], books)
        torch.testing.assert_close(
            model.readout(state), model.user(history, None, books), atol=1e-5, rtol=0
        )


def test_per_row_scenarios_match_row_by_row_calls() -> None:
    model = RecAdapter(cfg(aggregator="gru")).eval()
    scramble(model)
    names = ["books", "shared", "music"]
    idx = model.scenario_indices(names)
    history, pos, neg = torch.randn(3, 4, DIM), torch.randn(3, DIM), torch.randn(3, 2, DIM)
    mask = torch.tensor([[True] * 4, [False, True, True, True], [False, False, False, True]])
    with torch.no_grad():
        users = model.user(history, mask, idx)
        for i, sc in enumerate(idx.tolist()):
            one = model.user(history[i : i + 1], mask[i : i + 1], sc)
            torch.testing.assert_close(users[i : i + 1], one, atol=1e-6, rtol=0)
        assert (users[0] - model.user(history[:1], mask[:1], 0)[0]).abs().max() > 1e-4
        per_row = model.loss(history, mask, pos, neg, idx)
        assert not torch.isclose(per_row, model.loss(history, mask, pos, neg, 0))


# -- loss --------------------------------------------------------------------------------


def test_loss_is_infonce_with_in_batch_and_sampled_negatives() -> None:
    model = RecAdapter(cfg(aggregator="mean", temperature=0.5)).eval()
    scramble(model)
    history, pos, neg = torch.randn(4, 3, DIM), torch.randn(4, DIM), torch.randn(4, 2, DIM)
    pos[2] = pos[0]  # rows 0 and 2 share their next item: not each other's negative
    idx = torch.tensor([1, 0, 2, 1])  # every row's items go through its own scenario
    with torch.no_grad():
        users, p = model.user(history, None, idx), model.project(pos, idx)
        n = model.project(neg.reshape(8, DIM), idx.repeat_interleave(2)).reshape(4, 2, -1)
        expected = 0.0
        for i in range(4):
            cands = [p[j] for j in range(4) if j == i or not torch.equal(pos[j], pos[i])]
            logits = torch.stack([users[i] @ c for c in [*cands, *n[i]]]) / 0.5
            own = [j for j in range(4) if j == i or not torch.equal(pos[j], pos[i])].index(i)
            expected -= float(torch.log_softmax(logits, 0)[own]) / 4
        got = float(model.loss(history, None, pos, neg, idx))
        assert math.isclose(got, expected, rel_tol=1e-5)
        assert float(model.loss(history, None, pos, None, idx)) < got  # more negatives


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
            users = model.user(history)
            acc = top1(users, model.project(items), seen, target)
            return float(model.loss(history, None, items[target])), acc

    loss0, acc0 = evaluate()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        model.train()
        h, _, t = task_batch(items, keep, g, 128)
        opt.zero_grad()
        model.loss(h, None, items[t]).backward()
        opt.step()
    loss1, acc1 = evaluate()
    assert raw < 0.1 and acc0 < 0.1  # the frozen space really fails here
    assert loss1 < 0.6 * loss0
    assert acc1 > max(acc0, raw) + 0.15  # ~0.03 -> ~0.3 (deterministic seeds)


# -- save / load -------------------------------------------------------------------------

VARIANTS = list(itertools.product(["mean", "attention", "gru"], [True, False]))


@pytest.mark.parametrize(("kind", "scenario_experts"), VARIANTS)
def test_save_load_round_trip_every_variant(
    tmp_path: Path, kind: str, scenario_experts: bool
) -> None:
    model = RecAdapter(cfg(aggregator=kind, scenario_experts=scenario_experts, out_dim=12))
    scramble(model)
    books = model.scenario_index("books")
    model.scenario_index("music")
    path = save_adapter(model, tmp_path, 3)
    assert path == version_dir(tmp_path, 3) == tmp_path / "v000003"
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]

    loaded = load_adapter(path)
    fresh = RecAdapter(model.config)
    assert loaded.version == 3 and not loaded.training
    assert loaded.config == model.config and loaded.scenarios == model.scenarios
    model.eval()
    base, history = torch.randn(6, DIM), torch.randn(2, 4, DIM)
    mask = torch.tensor([[True] * 4, [False, False, True, True]])
    with torch.no_grad():
        for m in (model, loaded, fresh):
            m.eval()
        for sc in (0, books):
            assert torch.equal(loaded.project(base, sc), model.project(base, sc))
            assert torch.equal(loaded.user(history, mask, sc), model.user(history, mask, sc))
        assert not torch.allclose(fresh.user(history, mask), model.user(history, mask))


def test_scenario_map_is_persisted(tmp_path: Path) -> None:
    model = RecAdapter(cfg())
    for name in ("books", "music", "films"):
        model.scenario_index(name)
    save_adapter(model, tmp_path, 1)
    meta = json.loads((version_dir(tmp_path, 1) / CONFIG_NAME).read_text())
    assert meta["scenarios"] == {"books": 1, "music": 2, "films": 3} and meta["version"] == 1
    loaded = load_adapter(version_dir(tmp_path, 1))
    assert loaded.scenario_index("music", register=False) == 2
    assert loaded.scenario_index("games") == 4  # new names continue after the saved ones


def test_versions_only_move_forward(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    assert latest_version(root) is None and load_latest(root) is None
    model = RecAdapter(cfg())
    save_adapter(model, root, 1)
    save_adapter(model, root, 5)
    assert latest_version(root) == 5
    for stale in (5, 4, 0):
        with pytest.raises(ValueError, match="not above"):
            save_adapter(model, root, stale)
    save_adapter(model, root, 6)
    loaded = load_latest(root)
    assert loaded is not None and loaded.version == 6
    with pytest.raises(ValueError, match="version"):
        version_dir(root, -1)


def test_half_written_versions_are_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = RecAdapter(cfg())
    save_adapter(model, tmp_path, 1)
    # a crashed writer's leftovers: a temp dir, and a version dir without its config
    (tmp_path / ".v000007.abc.tmp").mkdir()
    (tmp_path / "v000008").mkdir()
    (tmp_path / "v000008" / WEIGHTS_NAME).write_bytes(b"partial")
    assert latest_version(tmp_path) == 1

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(adapters.io, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_adapter(model, tmp_path, 2)
    assert latest_version(tmp_path) == 1
    assert not (tmp_path / "v000002").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v000007.abc.tmp", "v000001", "v000008"]


def test_a_version_appears_only_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = RecAdapter(cfg())
    save_adapter(model, tmp_path, 1)
    seen: list[object] = []
    real_save_file = adapters.io.save_file

    def spy(*args: object, **kwargs: object) -> None:
        real_save_file(*args, **kwargs)  # type: ignore[arg-type]
        # what a concurrent reader sees while the new version is being written:
        seen.append((latest_version(tmp_path), (tmp_path / "v000002").exists()))

    monkeypatch.setattr(adapters.io, "save_file", spy)
    save_adapter(model, tmp_path, 2)
    assert seen == [(1, False)]
    assert latest_version(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_load_rejects_foreign_checkpoints(tmp_path: Path) -> None:
    save_adapter(RecAdapter(cfg()), tmp_path, 1)
    path = version_dir(tmp_path, 1)
    meta = json.loads((path / CONFIG_NAME).read_text())
    (path / CONFIG_NAME).write_text(json.dumps({**meta, "format": "peft"}))
    with pytest.raises(ValueError, match="checkpoint"):
        load_adapter(path)
