"""Typed settings of the online trainer (a pydantic model, like ``workers.config``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.adapters import AdapterConfig


class TrainingConfig(BaseModel):
    """When and how the adapters learn from the live (history -> next item) samples."""

    # A misspelt field is an error, not the default in silence (the environment's
    # variables are checked by `streams.settings.Settings`; this covers code and tools).
    model_config = ConfigDict(extra="forbid")

    mode: Literal["online", "zero-shot"] = Field(
        default="online",
        description="'online': fine-tune the adapters on the stream; 'zero-shot': never "
        "train (serve the frozen language model through the initial adapter).",
    )
    train_every_samples: int = Field(
        default=1000, ge=1, description="A round is due after this many new samples (N)."
    )
    train_every_seconds: float = Field(
        default=60.0,
        gt=0.0,
        description="... or after this many seconds since the last round (T), once "
        "min_round_samples new samples arrived.",
    )
    min_round_samples: int = Field(
        default=100,
        ge=1,
        description="New samples a round due by time (T) waits for: a round on fewer "
        "trains on the same replay again and has the gate judge a version on a handful "
        "of held-out samples, where a candidate goes live by chance (at "
        "train_every_samples or more, only the count makes a round due).",
    )
    steps_per_round: int = Field(default=10, ge=1, description="Optimizer steps per round.")
    # Chosen on validation N@10 (docs/ONLINE-TRAINING-STUDY.md, session 40), three seeds of
    # each dev set, per-user paired differences: Beauty +0.0028 (z +6.0), ml-latest-small
    # -0.0020 (z -0.55), ML-100K -0.0004 (z -0.12), combined z +3.1; the stream's served
    # NDCG@10 rose on all three (z +4 to +11). A round costs ~25 % more time.
    batch_size: int = Field(default=512, ge=1, description="Samples per optimizer step.")
    negatives: int = Field(
        default=1024,
        ge=0,
        description="Catalog items sampled uniformly as extra negatives per step (shared by "
        "every row, on top of the other rows' targets).",
    )
    whole_catalog: bool = Field(
        default=True,
        description="The trainer learns every catalog item's base vector (it follows the "
        "catalog), so its negatives and the gate rank over what serving ranks over; off: "
        "only the items the stream has named so far.",
    )
    # Chosen on validation (docs/ONLINE-TRAINING-STUDY.md, session 7): with the whole
    # catalog, 0.1 keeps items the stream never named ranked by their text (Beauty's
    # validation new-item R@10 0.080 vs zero-shot 0.054; 1.0 pushes them all down) and
    # is the best measured on ML-100K's validation N@10 (0.108).
    catalog_negatives: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of the sampled negatives drawn from every item the trainer knows "
        "(the whole catalog), the rest from the items the stream has named so far.",
    )
    # Chosen on validation N@10 (docs/ONLINE-TRAINING-STUDY.md, session 15): summed over
    # the three dev sets 0.2602 against 0.2442 (ML-100K +9 %, ml-latest-small +10 %,
    # Amazon Beauty -1 %, where few history items are ever sampled as negatives).
    exclude_history: bool = Field(
        default=True,
        description="Leave each sample's own history items out of its loss's candidates, "
        "as serving leaves a user's history out of the ranking; off: a history item sampled "
        "as a negative teaches the user's vector to rank it low.",
    )
    # Chosen on validation N@10 (docs/ONLINE-TRAINING-STUDY.md, session 15), with
    # exclude_history: summed over the three dev sets 0.2684 against 0.2602 (ML-100K +6 %,
    # Beauty +4 %, ml-latest-small -2 %); it costs some of the cold-item slices.
    logq_correction: bool = Field(
        default=True,
        description="Subtract from each candidate's logit the log of how often a step "
        "expects it among its candidates (popular items come as other rows' targets more "
        "often), so the sampled softmax approximates the full one serving ranks by.",
    )
    learning_rate: float = Field(default=1e-3, gt=0.0, description="Adam learning rate.")
    # Chosen on validation N@10 with id_shrinkage 10 (docs/ONLINE-TRAINING-STUDY.md,
    # session 19): at the shared rate the slope moves little from its start (0.9 per
    # event -> 0.81 on both MovieLens sets); at 0.01 it settles where each dataset puts
    # it (ML-100K 0.76, ml-latest-small 0.78, Beauty 0.64).
    decay_learning_rate: float | None = Field(
        default=0.01,
        gt=0.0,
        description="Adam learning rate of the attention aggregator's recency slope (one "
        "scalar: at the shared rate it moves at most learning_rate per step); None: "
        "learning_rate.",
    )
    lazy_ids: bool = Field(
        default=False,
        description="Update only the ID table's rows a step has gradients for (sparse "
        "gradients, SparseAdam); off: one Adam over every row, which keeps moving rows "
        "by their momentum after their last gradient.",
    )
    id_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        description="Adam learning rate of the ID table's rows; None: learning_rate.",
    )
    # Chosen on validation N@10 (docs/ONLINE-TRAINING-STUDY.md, session 28), three seeds
    # of each dev set: summed means 0.2757 against 0.2720 with none (ML-100K +2.6 %,
    # Beauty +1.6 %, ml-latest-small -0.6 %); 3 and 10 lose on Beauty. It costs Beauty's
    # items with fewer than 5 training interactions some recall (still far above zero-shot).
    id_weight_decay: float = Field(
        default=1.0,
        ge=0.0,
        description="Decoupled weight decay of the ID table's rows (AdamW): each step "
        "pulls every row toward zero, i.e. each item toward its text projection; 0: off. "
        "Needs lazy_ids off (set it to 0 with lazy_ids).",
    )
    buffer_size: int = Field(
        default=100_000, ge=1, description="Most recent samples kept for replay."
    )
    max_history: int = Field(
        default=20, ge=1, description="Most recent history items a sample keeps (and reads)."
    )
    gate: bool = Field(
        default=True,
        description="Gate every version: a candidate goes live only if it ranks the round's "
        "held-out newest samples (NDCG@10) better than the live version (see gate_tolerance) "
        "and at least as well as the frozen model.",
    )
    gate_samples: int = Field(
        default=1000,
        ge=1,
        description="Most of a round's new samples held out of its training and scored "
        "by the gate.",
    )
    gate_margin: float = Field(
        default=0.0,
        ge=0.0,
        description="NDCG@10 a candidate must beat the live version by on the held-out samples.",
    )
    # Chosen on validation N@10 (docs/ONLINE-TRAINING-STUDY.md): 1.0 let ~3x more
    # candidates live but scored lower on two of the three dev sets (ml-latest-small
    # 0.065 vs 0.073, ML-100K 0.102 vs 0.106; Beauty 0.041 vs 0.041).
    gate_tolerance: float = Field(
        default=0.0,
        ge=0.0,
        description="Standard errors (of the paired per-sample NDCG@10 differences on the "
        "held-out samples) a candidate may trail the live version by and still go live, "
        "if it also ranks them at least as well as the frozen model (0: it must beat the "
        "live version by gate_margin).",
    )
    gate_patience: int = Field(
        default=0,
        ge=0,
        description="Rejections in a row after which the candidate restarts from the live "
        "version (0: never; training continues from the candidate).",
    )
    anchor: float = Field(
        default=0.0,
        ge=0.0,
        description="Weight of an L2 pull of the projection and aggregator toward their "
        "starting point (the text prior); 0 disables it.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of sampling and dropout.")
    adapter: dict[str, Any] = Field(
        default_factory=dict,
        description="AdapterConfig fields (aggregator, n_experts, temperature, max_items ...) "
        "for a new adapter; `dim` and `max_history` come from the encoder and this config.",
    )

    num_cpus: float = Field(default=1.0, gt=0.0, description="CPUs reserved by the trainer actor.")
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower than serving the training thread's CPU priority is "
        "(Linux nice, per thread, added to the actor's own): on CPUs shared with serving, "
        "a round gets the smaller share when both want the same CPU. It does not keep a "
        "round from slowing serving on a 2-vCPU machine; a CPU or node of its own does "
        "(BENCHMARKS.md, session 42). 0: the same priority (session 22: 10 once the "
        "actors run at nice 0).",
    )
    max_share: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="The most of its wall time the trainer spends in rounds: a round that "
        "took D seconds is followed by none until D / max_share after it started, due or "
        "not (but never later than train_every_seconds after it ended). Under load rounds "
        "take longer, so versions come less often and serving keeps the CPU that "
        "re-projecting and recomputing each version takes. 1: a round as soon as one is due.",
    )
    num_gpus: float = Field(default=0.0, ge=0.0, description="GPUs reserved by the trainer actor.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources the trainer actor needs."
    )

    @model_validator(mode="after")
    def _adapter_is_valid(self) -> TrainingConfig:
        self.adapter_config()  # raises ValueError on an unknown or invalid field
        if self.id_weight_decay and self.lazy_ids:
            raise ValueError(
                "id_weight_decay needs the dense ID update: set lazy_ids off, or "
                "id_weight_decay to 0 with lazy_ids"
            )
        return self

    def adapter_fields(self, dim: int = 384) -> dict[str, Any]:
        """AdapterConfig keyword arguments of a fresh adapter for base vectors of ``dim``."""
        return {"max_history": self.max_history, **self.adapter, "dim": dim}

    def adapter_config(self, dim: int = 384) -> AdapterConfig:
        """The AdapterConfig of a fresh adapter for base vectors of ``dim``."""
        return AdapterConfig.from_dict(self.adapter_fields(dim))
