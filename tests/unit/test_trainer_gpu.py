"""The trainer's GPU path: it trains on CUDA and publishes a version that CPU servers
load with the same outputs (skipped without a GPU)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from workers.adapters.io import AdapterFiles, adapter_from_files
from workers.model import Vector
from workers.trainer_service import TrainerService
from workers.training import Sample, TrainingConfig

pytestmark = pytest.mark.gpu

DIM = 16


class DictCatalog:
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.base = {f"i{k}": rng.standard_normal(DIM).astype(np.float32) for k in range(n)}
        self.versions: list[int] = []
        self.files: dict[int, AdapterFiles] = {}
        self.rounds: list[dict[str, Any]] = []

    def items(self, item_ids: Sequence[str]) -> Mapping[str, tuple[Vector, str]]:
        return {i: (self.base[i], "shop") for i in item_ids if i in self.base}

    def indexed_since(self, log_id: str | None, position: int) -> tuple[str, int, list[str]]:
        return "log", len(self.base), list(self.base)[0 if log_id != "log" else position :]

    def publish(self, version: int, files: AdapterFiles) -> int:
        self.versions.append(version)
        self.files[version] = files
        return version

    def log_round(self, entry: Mapping[str, Any]) -> None:
        self.rounds.append(dict(entry))

    def latest(self) -> tuple[int, AdapterFiles | None]:
        return 0, None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trainer_trains_on_cuda_and_publishes_a_cpu_loadable_version(tmp_path: Path) -> None:
    catalog = DictCatalog(30)
    config = TrainingConfig(
        train_every_samples=10,
        steps_per_round=5,
        batch_size=8,
        negatives=4,
        num_gpus=1.0,
        gate=False,
    )
    service = TrainerService(config, catalog, DIM, background=False)
    assert service.trainer.adapter.moe.weight.device.type == "cuda"
    ids = sorted(catalog.base)
    service.add([Sample(tuple(ids[k : k + 3]), ids[k + 3], "shop") for k in range(20)])
    report = service.step(now=1.0)
    assert report is not None and report.version == 1 and catalog.versions == [1]
    published = adapter_from_files(catalog.files[1])
    assert published.moe.weight.device.type == "cpu"
    base = torch.from_numpy(np.stack([catalog.base[i] for i in ids]))
    on_cpu = published.item_vectors(ids, base, ["shop"] * len(ids))
    on_gpu = service.trainer.adapter.item_vectors(ids, base.cuda(), ["shop"] * len(ids))
    np.testing.assert_allclose(on_cpu.numpy(), on_gpu.cpu().numpy(), atol=1e-5)
