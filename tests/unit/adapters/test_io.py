"""Versioned safetensors checkpoints: round trips, monotonic versions, atomicity."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

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
    model = RecAdapter(cfg(aggregator="gru"))
    scramble(model)
    model.scenario_index("books")
    files = adapters.io.adapter_files(model, 4)
    assert set(files) == {CONFIG_NAME, WEIGHTS_NAME}
    back = adapters.io.adapter_from_files(files)
    assert back.version == 4 and back.scenarios == {"books": 1}
    for (name, a), (_, b) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    adapters.io.save_files(files, tmp_path, 4)
    assert adapters.io.read_files(tmp_path, 4) == files
    with pytest.raises(ValueError, match="missing"):
        adapters.io.adapter_from_files({CONFIG_NAME: files[CONFIG_NAME]})
