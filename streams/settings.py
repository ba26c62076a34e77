"""The one typed settings object, read from ``STREAMREC_*`` environment variables.

Nested sections use ``__``: ``STREAMREC_KAFKA__BROKER``, ``STREAMREC_STORE__URL`` ...
It is validated at start and passed into constructors; nothing reads it globally.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.kafka_settings import KafkaConfig
from workers.config import AdapterStoreConfig, EncoderConfig, RecommendConfig, StoreConfig
from workers.training import TrainingConfig


class RetryConfig(BaseModel):
    """How a worker waits out failures of Ray, the store or the broker."""

    backoff: float = Field(
        default=0.2, gt=0, description="First wait after a transient failure, s (doubles)."
    )
    max_backoff: float = Field(default=10.0, gt=0, description="Longest wait between tries, s.")
    give_up_after: float | None = Field(
        default=None,
        gt=0,
        description="Seconds of transient failures after which a batch is dead-lettered "
        "(None: retry until it works).",
    )


class UsersConfig(BaseModel):
    """The users table: how long an idle user's state is kept, and how much memory its
    RocksDB store may hold (per partition database: a worker opens one per partition it
    owns, and each holds up to ``write_buffers`` x ``write_buffer_mb`` +
    ``block_cache_mb``)."""

    idle_expiry: float = Field(
        default=30 * 24 * 3600.0,
        ge=0,
        description="Seconds without an event after which a user's state is removed (its "
        "changelog record tombstoned); the user then starts over. 0: never.",
    )
    expiry_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between a worker's passes over its users."
    )
    # Faust's RocksDB defaults are 64 MiB x 3 write buffers and a 2 GiB block cache per
    # partition database: at the soak's write rate a buffer fills for ~70 minutes before
    # its first flush, and the cache keeps blocks of files compactions have replaced; the
    # soaked worker grew ~2.3 MB a minute for an hour (README, "Soak";
    # docs/ENVIRONMENT-NOTES.md).
    write_buffer_mb: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Size of each RocksDB write buffer (memtable) of a users-table "
        "partition database, MiB (Faust's default: 64).",
    )
    write_buffers: int = Field(
        default=2,
        ge=2,
        le=16,
        description="Write buffers a users-table partition database may hold, the one "
        "filling and those being flushed (Faust's default: 3).",
    )
    block_cache_mb: int = Field(
        default=8,
        ge=1,
        le=65536,
        description="RocksDB block cache of each users-table partition database, MiB "
        "(Faust's default: 2048); the operating system's page cache holds the files too.",
    )


class HeapConfig(BaseModel):
    """The worker process's C heap (glibc only; `streams/heap.py`)."""

    arenas: int = Field(
        default=2,
        ge=0,
        le=1024,
        description="Most glibc malloc arenas of a worker (0: glibc's default, 8 per core); "
        "fewer arenas hold less freed memory.",
    )
    trim_interval: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between hand-backs of the heap's free pages to the operating "
        "system (malloc_trim; 0: never).",
    )


class MetricsConfig(BaseModel):
    """The worker's Prometheus endpoint (``/metrics``)."""

    port: int = Field(
        default=6066,
        ge=0,
        le=65535,
        description="Port of the worker's /metrics endpoint (0: none). Workers sharing a "
        "host need one port each.",
    )
    bind: str = Field(default="0.0.0.0", description="Address the /metrics endpoint binds.")
    interval: float = Field(
        default=5.0, gt=0, description="Seconds between refreshes of lag, version and sizes."
    )


class HealthConfig(BaseModel):
    """How a worker tells probes whether it can serve."""

    interval: float = Field(
        default=5.0, gt=0, description="Seconds between checks of the worker's actors."
    )
    timeout: float = Field(
        default=10.0, gt=0, description="Seconds the actors have to answer a check."
    )


class RayConfig(BaseModel):
    address: str | None = Field(
        default=None, description="Ray cluster address (e.g. ray://head:10001, auto); None = local."
    )
    namespace: str = Field(default="streamrec", description="Ray namespace of named actors.")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray instance.")
    # Ray starts its worker processes at nice 15 (its `worker_niceness`) so that its own
    # daemons stay responsive; then on shared CPUs every nice-0 process (this Faust
    # worker, the broker, a client) runs before the Recommender that serving waits for.
    worker_niceness: int = Field(
        default=0,
        ge=0,
        le=19,
        description="Linux nice of a local Ray instance's actor processes (Ray's own "
        "default is 15). A cluster started by `ray start` takes it as "
        "`--system-config='{\"worker_niceness\": 0}'`.",
    )
    auth_mode: str = Field(
        default="token",
        pattern="^(token|disabled)$",
        description="Ray token authentication (RAY_AUTH_MODE) of the local instance or "
        "when joining a cluster: 'token' (clusters started by `ray start` use it) or "
        "'disabled'.",
    )
    auth_token_path: Path | None = Field(
        default=None,
        description="File holding the cluster's token (RAY_AUTH_TOKEN_PATH); "
        "default: Ray's own, ~/.ray/auth_token (which a local instance creates if missing).",
    )

    def auth_env(self) -> dict[str, str]:
        """The RAY_AUTH_* variables to set before Ray starts locally or joins ``address``."""
        env = {"RAY_AUTH_MODE": self.auth_mode}
        if self.auth_token_path is not None and self.auth_mode == "token":
            env["RAY_AUTH_TOKEN_PATH"] = str(self.auth_token_path)
        return env

    def apply_auth_env(self, environ: MutableMapping[str, str]) -> None:
        """Put `auth_env` into ``environ`` (``os.environ``) where the operator set none of
        its own. Ray reads RAY_AUTH_* once, when it is imported: call this before anything
        imports Ray."""
        for name, value in self.auth_env().items():
            environ.setdefault(name, value)


class LimitsConfig(BaseModel):
    """Bounds on one inbound record (`items`, `events`), enforced when it is decoded: a
    record beyond one is a dead letter with the reason, except an over-long text, which
    is cut (README, "Limits")."""

    model_config = ConfigDict(frozen=True)

    record_bytes: int = Field(
        default=1_048_576,
        ge=64,
        description="Largest record value, bytes; a larger one is rejected before parsing.",
    )
    json_depth: int = Field(
        default=16,
        ge=2,
        le=256,
        description="Deepest nesting of objects and arrays in a record (the record itself "
        "is 1), unknown fields included.",
    )
    id_bytes: int = Field(
        default=256,
        ge=1,
        le=1024,
        description="Longest event_id, user_id, item_id and event type, UTF-8 bytes (a "
        "user's state holds up to about 500 ids and must fit one changelog record).",
    )
    scenario_bytes: int = Field(
        default=128,
        ge=1,
        le=1024,
        description="Longest scenario name, UTF-8 bytes (each scenario may keep state).",
    )
    text_chars: int = Field(
        default=10_000,
        ge=1,
        description="Characters of an item's or an event's text kept; the rest is cut "
        "(the encoder reads only its first STREAMREC_ENCODER__MAX_LENGTH tokens).",
    )
    attributes: int = Field(default=64, ge=0, description="Most attributes per item.")
    attributes_bytes: int = Field(
        default=16_384, ge=2, description="Largest size of an item's attributes as JSON, bytes."
    )
    weight_max: float = Field(
        default=1000.0,
        gt=0,
        allow_inf_nan=False,
        description="Largest event weight (a weight must also be > 0).",
    )
    ts_min: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Earliest accepted ts, epoch seconds (1970-01-01).",
    )
    ts_max: float = Field(
        default=4_102_444_800.0,
        allow_inf_nan=False,
        description="Latest accepted ts, epoch seconds (2100-01-01: a timestamp in "
        "milliseconds is rejected).",
    )

    @model_validator(mode="after")
    def _window(self) -> LimitsConfig:
        if self.ts_min >= self.ts_max:
            raise ValueError(f"ts_min ({self.ts_min}) must be < ts_max ({self.ts_max})")
        return self


class Settings(BaseSettings):
    """All of streamrec's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default=Path(".streamrec"), description="Local state (Faust tables, embedded store)."
    )
    log_level: str = Field(default="WARNING", description="Python log level of workers.")
    ready_file: Path | None = Field(
        default=None,
        description="File that exists while a worker consumes and reaches its Ray actors "
        "(readiness probe); removed when they stop answering and on exit.",
    )
    table_store: str = Field(
        default="rocksdb://",
        pattern="^(rocksdb|memory)://",
        description="Where a worker keeps its users table between starts: 'rocksdb://' "
        "(under STREAMREC_DATA_DIR; a restart replays only the changelog's tail) or "
        "'memory://' (every start replays the whole changelog).",
    )
    alive_file: Path | None = Field(
        default=None,
        description="File a worker touches every health interval while its event loop "
        "runs (liveness probe: its age).",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The worker's event loop: 'uvloop' (libuv, in C) or 'asyncio' (the "
        "standard library's). Faust runs a few tasks and callbacks per record on it.",
    )
    health: HealthConfig = Field(default_factory=HealthConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    adapters: AdapterStoreConfig = Field(default_factory=AdapterStoreConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    users: UsersConfig = Field(default_factory=UsersConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    heap: HeapConfig = Field(default_factory=HeapConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _no_unknown_env(self) -> Settings:
        # pydantic-settings ignores variables that match no field, so a typo such as
        # STREAMREC_KAFKA__PARTITION=8 would silently run with the default: refuse it.
        unknown = unknown_env(os.environ)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}: see the README's configuration table"
            )
        return self


def setting_rows(
    model: type[BaseModel] = Settings, prefix: str = "STREAMREC_"
) -> list[tuple[str, str, str]]:
    """(env var, default, description) for every leaf setting, nested sections flattened."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        env = f"{prefix}{name.upper()}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(setting_rows(annotation, env + "__"))
        else:
            default = info.get_default(call_default_factory=True)
            rows.append((env, "" if default is None else str(default), info.description or ""))
    return rows


def env_names() -> set[str]:
    """Every STREAMREC_* name the settings read: each leaf, and each section (as JSON)."""
    names: set[str] = set()
    for env, _, _ in setting_rows():
        parts = env.split("__")
        names.update("__".join(parts[:n]) for n in range(1, len(parts) + 1))
    return names


def unknown_env(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """STREAMREC_* variables that name no setting (nor a whole section given as JSON)."""
    known = env_names()
    return sorted(
        k for k in environ if k.upper().startswith("STREAMREC_") and k.upper() not in known
    )
