"""Parameter-efficient adapters learned online on top of the frozen language model.

UniSRec-style (Hou et al., KDD 2022): parametric whitening + a mixture-of-experts
projection with a shared gate and per-scenario gate offsets (`WhitenedMoE`), and a
user/sequence aggregator with an O(d)-per-event incremental path
(`SequenceAggregator`), and an optional learned per-item ID residual (`ItemResidual`),
combined in `RecAdapter`; `AdapterConfig` describes it and
`save_adapter`/`load_adapter` keep versioned safetensors checkpoints. Pure torch.
"""

from workers.adapters.aggregator import SequenceAggregator
from workers.adapters.config import AGGREGATORS, AdapterConfig
from workers.adapters.ids import ItemResidual
from workers.adapters.io import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    latest_version,
    load_adapter,
    load_latest,
    save_adapter,
    version_dir,
)
from workers.adapters.model import SHARED, RecAdapter
from workers.adapters.moe import WhitenedMoE

__all__ = [
    "AGGREGATORS",
    "CONFIG_NAME",
    "SHARED",
    "WEIGHTS_NAME",
    "AdapterConfig",
    "ItemResidual",
    "RecAdapter",
    "SequenceAggregator",
    "WhitenedMoE",
    "latest_version",
    "load_adapter",
    "load_latest",
    "save_adapter",
    "version_dir",
]
