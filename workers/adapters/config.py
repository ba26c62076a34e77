"""Configuration of the online adapters (the shape of peft's ``IA3Config``).

A plain dataclass: every field carries its ``help`` text, ``__post_init__`` validates
and resolves defaults, and ``to_dict``/``from_dict`` give the JSON form written beside
the weights (``adapter_config.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

AGGREGATORS = ("mean", "attention", "gru")
LEGACY: dict[str, Any] = {"id_shrinkage": 0.0}  # fields added later: their "off" value


@dataclass
class AdapterConfig:
    """Whitened mixture-of-experts projection + sequence aggregator (UniSRec-style)."""

    dim: int = field(
        default=384,
        metadata={"help": "Dimension of the frozen language model's base vectors (input)."},
    )
    out_dim: int | None = field(
        default=None,
        metadata={
            "help": "Dimension of the adapted ('rec') vectors; None means the same as `dim`. "
            "Only out_dim == dim starts as an (almost) identity map."
        },
    )
    n_experts: int = field(
        default=2, metadata={"help": "Whitening experts mixed by the gate (>= 1)."}
    )
    dropout: float = field(
        default=0.1,
        metadata={"help": "Dropout on the base vector before whitening (training only), [0, 1)."},
    )
    temperature: float = field(
        default=0.07,
        metadata={
            "help": "Softmax temperature of the contrastive (InfoNCE) loss, > 0. 0.07 was "
            "chosen with the trainer's history exclusion and logQ correction on the "
            "validation targets of the three dev sets (docs/ONLINE-TRAINING-STUDY.md, "
            "session 15); 0.1 before."
        },
    )
    scenario_experts: bool = field(
        default=True,
        metadata={
            "help": "Learn a per-scenario gate offset on top of the shared gate. Index 0 is "
            "the shared part; unseen scenarios start exactly there (zero-shot)."
        },
    )
    max_scenarios: int = field(
        default=64,
        metadata={
            "help": "Rows of the per-scenario gate table, index 0 included (>= 1). Scenarios "
            "beyond capacity fall back to the shared part."
        },
    )
    max_items: int = field(
        default=16384,
        metadata={
            "help": "Rows of the learned per-item ID residual table, index 0 (unknown item, "
            "always zero) included; 0 disables it. Items the trainer registered get a row "
            "added to their text projection; unknown items stay text-only (cold start)."
        },
    )
    id_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Share of items trained without their ID residual row in each step "
            "(text only), [0, 1): the text projection keeps ranking on its own, as it "
            "must for items with no row (cold start)."
        },
    )
    id_shrinkage: float = field(
        default=10.0,
        metadata={
            "help": "Pseudo-count c of the ID residual's shrinkage, >= 0: an item seen as a "
            "training target n times gets n / (n + c) of its ID row, so an item with few "
            "interactions ranks mostly by its text and one never a target by its text "
            "alone (only sampled as a negative, it learns nothing from its row); 0: off. "
            "Chosen on the validation targets of ML-100K, ml-latest-small and Amazon "
            "Beauty: 5 in session 10, 10 with the recency slope's own learning rate in "
            "session 19 (docs/ONLINE-TRAINING-STUDY.md)."
        },
    )
    aggregator: str = field(
        default="attention",
        metadata={"help": f"How a history becomes one user vector: one of {AGGREGATORS}."},
    )
    max_history: int = field(
        default=50,
        metadata={"help": "Most recent history items the batch (recompute) path reads (>= 1)."},
    )
    recency: float = field(
        default=0.9,
        metadata={
            "help": "Initial per-event decay of the 'attention' and 'gru' aggregators, in (0, 1). "
            "At init 'attention' equals the frozen recommender's decayed fold."
        },
    )
    init_noise: float = field(
        default=0.1,
        metadata={
            "help": "Relative size of the random perturbation of each expert's identity "
            "init (breaks the symmetry between experts), >= 0."
        },
    )

    def __post_init__(self) -> None:
        _check_int("dim", self.dim, minimum=1)
        if self.out_dim is None:
            self.out_dim = self.dim
        _check_int("out_dim", self.out_dim, minimum=1)
        _check_int("n_experts", self.n_experts, minimum=1)
        _check_int("max_scenarios", self.max_scenarios, minimum=1)
        _check_int("max_history", self.max_history, minimum=1)
        _check_int("max_items", self.max_items, minimum=0)
        if not isinstance(self.scenario_experts, bool):
            raise ValueError(f"scenario_experts must be a bool, got {self.scenario_experts!r}")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        _check_float("dropout", self.dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        _check_float("id_dropout", self.id_dropout)
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        _check_float("id_shrinkage", self.id_shrinkage)
        if self.id_shrinkage < 0.0:
            raise ValueError(f"id_shrinkage must be >= 0, got {self.id_shrinkage}")
        _check_float("temperature", self.temperature)
        if self.temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        _check_float("recency", self.recency)
        if not 0.0 < self.recency < 1.0:
            raise ValueError(f"recency must be in (0, 1), got {self.recency}")
        _check_float("init_noise", self.init_noise)
        if self.init_noise < 0.0:
            raise ValueError(f"init_noise must be >= 0, got {self.init_noise}")

    @property
    def out_features(self) -> int:
        """`out_dim` resolved (always an int after validation)."""
        return self.dim if self.out_dim is None else self.out_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdapterConfig:
        """A new adapter's config: ``data`` over the defaults; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AdapterConfig fields: {unknown}")
        return cls(**dict(data))

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any]) -> AdapterConfig:
        """Inverse of `to_dict` for a saved adapter: a field its checkpoint predates takes
        the value that behaves as the checkpoint did (`LEGACY`), not today's default."""
        return cls.from_dict({**LEGACY, **dict(data)})


def _check_int(name: str, value: object, *, minimum: int) -> None:
    # bool is an int subclass: `dim=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
