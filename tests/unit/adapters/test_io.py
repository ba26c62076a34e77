"""Versioned safetensors checkpoints: round trips, monotonic versions, atomicity."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_weights
from safetensors.torch import save as save_weights

from tests.unit.adapters.helpers import DIM, cfg, scramble, user_vectors
from workers import adapters
from workers.adapters import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    RecAdapter,
    latest_version,
    load_adapter,
    load_latest,
    save_adapter,
    version_dir,
)

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
            assert torch.equal(
                user_vectors(loaded, history, mask, sc), user_vectors(model, history, mask, sc)
            )
        assert not torch.allclose(
            user_vectors(fresh, history, mask), user_vectors(model, history, mask)
        )


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

    monkeypatch.setattr(adapters.io, "_fsync", boom)  # fails while writing the files
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
    real_fsync = adapters.io._fsync

    def spy(path: Path) -> None:
        real_fsync(path)
        # what a concurrent reader sees while the new version is being written:
        seen.append((latest_version(tmp_path), (tmp_path / "v000002").exists()))

    monkeypatch.setattr(adapters.io, "_fsync", spy)
    save_adapter(model, tmp_path, 2)
    # each file in the hidden directory, then the root after the rename
    assert seen == [(1, False), (1, False), (2, True)]
    assert latest_version(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_load_rejects_foreign_checkpoints(tmp_path: Path) -> None:
    save_adapter(RecAdapter(cfg()), tmp_path, 1)
    path = version_dir(tmp_path, 1)
    meta = json.loads((path / CONFIG_NAME).read_text())
    (path / CONFIG_NAME).write_text(json.dumps({**meta, "format": "peft"}))
    with pytest.raises(ValueError, match="checkpoint"):
        load_adapter(path)


def test_a_version_travels_as_files_in_memory(tmp_path: Path) -> None:
    """What crosses Ray nodes: the same two files, no directory needed."""
    model = RecAdapter(cfg(aggregator="gru", max_items=64))
    model.item_indices(["a", "b", "c"])  # rows 1-3
    scramble(model)
    model.scenario_index("books")
    files = adapters.io.adapter_files(model, 4)
    assert set(files) == {CONFIG_NAME, WEIGHTS_NAME}
    back = adapters.io.adapter_from_files(files)
    assert back.version == 4 and back.scenarios == {"books": 1} and back.items == model.items
    for (name, a), (_, b) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        if name in adapters.io.ID_ROWS_KEYS:  # the rows items use; no item maps past them
            assert b.shape[0] == 4 and torch.equal(a[:4], b), name
        else:
            assert torch.equal(a, b), name
    adapters.io.save_files(files, tmp_path, 4)
    assert adapters.io.read_files(tmp_path, 4) == files
    with pytest.raises(ValueError, match="missing"):
        adapters.io.adapter_from_files({CONFIG_NAME: files[CONFIG_NAME]})


def _stored_rows(files: adapters.io.AdapterFiles) -> int:
    table = load_weights(files[WEIGHTS_NAME])["item_residual.table.weight"]
    return int(table.shape[0])


def test_the_files_grow_with_registered_items_not_with_max_items() -> None:
    model = RecAdapter(cfg(max_items=4096, id_shrinkage=2.0))
    assert _stored_rows(adapters.io.adapter_files(model, 1)) == 1  # the unknown item's row
    model.item_indices([f"i{n}" for n in range(10)])
    model.observe_targets(["i0", "i3", "i3"])
    files = adapters.io.adapter_files(model, 2)
    assert _stored_rows(files) == 11
    assert load_weights(files[WEIGHTS_NAME])["item_residual.counts"].shape == (11,)
    legacy = RecAdapter(cfg(max_items=4096, id_shrinkage=2.0))
    legacy.item_residual.reserve(4096)  # type: ignore[union-attr]
    assert len(files[WEIGHTS_NAME]) * 20 < len(_legacy_files(legacy, 1)[WEIGHTS_NAME])


def _legacy_files(model: RecAdapter, version: int) -> adapters.io.AdapterFiles:
    """Format 1, as earlier versions wrote it: the table as the model holds it."""
    meta = {
        "format": adapters.io.LEGACY_FORMAT,
        "version": version,
        "config": model.config.to_dict(),
        "scenarios": dict(model.scenarios),
        "items": dict(model.items),
    }
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return {CONFIG_NAME: json.dumps(meta).encode(), WEIGHTS_NAME: save_weights(weights)}


@pytest.mark.parametrize("legacy", [False, True])
def test_a_loaded_copy_scores_every_item_as_the_trainer_and_can_train_on(legacy: bool) -> None:
    model = RecAdapter(cfg(max_items=512, id_shrinkage=1.0))
    model.item_residual.reserve(512)  # type: ignore[union-attr]  # format 1 held it all
    seen = [f"i{n}" for n in range(20)]
    model.item_indices(seen)
    model.observe_targets(seen[:12] * 2)
    with torch.no_grad():  # trained rows; rows past the registered ones stay zero
        table = model.item_residual.table.weight  # type: ignore[union-attr]
        table[1:21] = 0.5 * torch.randn(20, table.shape[1])
    files = _legacy_files(model, 3) if legacy else adapters.io.adapter_files(model, 3)
    back = adapters.io.adapter_from_files(files)
    residual = back.item_residual
    assert residual is not None and back.items == model.items and back.version == 3
    assert residual.rows == (512 if legacy else 21) and residual.capacity == 512
    ids = [*seen, "new-1", "new-2"]  # never registered: their text projection only
    base = torch.randn(len(ids), DIM)
    model.eval()
    assert torch.equal(
        back.item_vectors(ids, base, [None] * len(ids)),
        model.item_vectors(ids, base, [None] * len(ids)),
    )
    # a resumed trainer registers new items in the next rows, which start at zero
    assert back.item_index("new-1") == 21 and back.item_index("new-2") == 22
    assert residual.rows >= 23 and not residual.table.weight[21:].any()
    assert torch.equal(residual.table.weight[:21], model.item_residual.table.weight[:21])  # type: ignore[union-attr]


def test_a_table_that_does_not_match_its_item_map_is_refused() -> None:
    model = RecAdapter(cfg(max_items=64))
    model.item_indices(["a", "b"])
    files = adapters.io.adapter_files(model, 1)
    meta = json.loads(files[CONFIG_NAME])
    meta["items"] = {"a": 1}  # one item fewer than the stored rows say
    with pytest.raises(ValueError, match="rows"):
        adapters.io.adapter_from_files({**files, CONFIG_NAME: json.dumps(meta).encode()})
    meta["items"] = {f"i{n}": n + 1 for n in range(64)}  # more than max_items holds
    with pytest.raises(ValueError, match="max_items"):
        adapters.io.adapter_from_files({**files, CONFIG_NAME: json.dumps(meta).encode()})
