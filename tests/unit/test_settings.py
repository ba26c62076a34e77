"""The typed settings object and its STREAMREC_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.app import create_app
from streams.kafka_settings import KafkaConfig
from streams.settings import Settings
from workers.config import EncoderConfig, RecommendConfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STREAMREC_* variable of the calling shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("STREAMREC_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.data_dir == Path(".streamrec")
    assert s.log_level == "WARNING"
    assert s.ready_file is None
    assert s.kafka.broker == "kafka://127.0.0.1:9092"
    assert s.kafka.bootstrap_servers() == ["127.0.0.1:9092"]
    assert (s.kafka.app_id, s.kafka.partitions, s.kafka.replication) == ("streamrec", 4, 1)
    assert s.kafka.topics.model_dump() == {
        "items": "items",
        "events": "events",
        "recommendations": "recommendations",
        "dead_letters": "dead-letters",
    }
    assert s.ray.address is None
    assert s.encoder.model_path is None
    assert s.encoder.pooling == "mean"
    assert s.store.url == "edge:.streamrec/qdrant"
    assert s.recommend == RecommendConfig()
    assert s.recommend.top_k == 10


def test_env_vars_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_DATA_DIR", "/tmp/state")
    monkeypatch.setenv("STREAMREC_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("STREAMREC_KAFKA__PARTITIONS", "8")
    monkeypatch.setenv("STREAMREC_KAFKA__TOPICS__EVENTS", "clicks")
    monkeypatch.setenv("STREAMREC_RECOMMEND__TOP_K", "25")
    monkeypatch.setenv("STREAMREC_RECOMMEND__RECENCY", "0.5")
    monkeypatch.setenv("STREAMREC_ENCODER__POOLING", "cls")
    monkeypatch.setenv("STREAMREC_STORE__URL", "local::memory:")
    monkeypatch.setenv("STREAMREC_RAY__NUM_CPUS", "3")
    s = Settings()
    assert s.data_dir == Path("/tmp/state")
    assert s.log_level == "DEBUG"
    assert s.kafka.partitions == 8
    assert s.kafka.topics.events == "clicks"
    assert s.kafka.topics.items == "items"  # siblings keep their defaults
    assert (s.recommend.top_k, s.recommend.recency) == (25, 0.5)
    assert s.encoder.pooling == "cls"
    assert s.store.url == "local::memory:"
    assert s.ray.num_cpus == 3


def test_env_var_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("streamrec_kafka__app_id", "lower")
    assert Settings().kafka.app_id == "lower"


def test_whole_section_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA", '{"partitions": 3, "app_id": "json"}')
    s = Settings()
    assert (s.kafka.partitions, s.kafka.app_id) == (3, "json")


def test_constructor_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__PARTITIONS", "3")
    assert Settings(kafka={"partitions": 9}).kafka.partitions == 9


@pytest.mark.parametrize(
    ("raw", "broker", "servers"),
    [
        ("host:9092", "kafka://host:9092", ["host:9092"]),
        ("kafka://host:9092", "kafka://host:9092", ["host:9092"]),
        ("a:1,b:2", "kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
        (" a:1 ; kafka://b:2 ,", "kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
        ("PLAINTEXT://a:1", "PLAINTEXT://a:1", ["a:1"]),
    ],
)
def test_broker_normalisation(raw: str, broker: str, servers: list[str]) -> None:
    kafka = KafkaConfig(broker=raw)
    assert kafka.broker == broker
    assert kafka.bootstrap_servers() == servers


def test_broker_from_env_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__BROKER", "k1:9092,k2:9093")
    assert Settings().kafka.bootstrap_servers() == ["k1:9092", "k2:9093"]


@pytest.mark.parametrize("raw", ["", " ", " , ;"])
def test_broker_without_hosts_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError, match="at least one host:port"):
        KafkaConfig(broker=raw)


@pytest.mark.parametrize(
    ("name", "value", "loc"),
    [
        ("STREAMREC_KAFKA__PARTITIONS", "0", "kafka.partitions"),
        ("STREAMREC_KAFKA__PARTITIONS", "abc", "kafka.partitions"),
        ("STREAMREC_KAFKA__REPLICATION", "0", "kafka.replication"),
        ("STREAMREC_KAFKA__BATCH_WITHIN", "0", "kafka.batch_within"),
        ("STREAMREC_RECOMMEND__TOP_K", "0", "recommend.top_k"),
        ("STREAMREC_RECOMMEND__TOP_K", "1001", "recommend.top_k"),
        ("STREAMREC_RECOMMEND__RECENCY", "1.5", "recommend.recency"),
        ("STREAMREC_RECOMMEND__RECENCY", "0", "recommend.recency"),
        ("STREAMREC_RECOMMEND__TEXT_WEIGHT", "-1", "recommend.text_weight"),
        ("STREAMREC_ENCODER__POOLING", "max", "encoder.pooling"),
        ("STREAMREC_ENCODER__MAX_LENGTH", "4", "encoder.max_length"),
        ("STREAMREC_RAY__NUM_CPUS", "0", "ray.num_cpus"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, loc: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [".".join(map(str, e["loc"])) for e in info.value.errors()] == [loc]


def test_unknown_top_level_argument_is_forbidden() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(bogus=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["STREAMREC_BOGUS", "STREAMREC_KAFKA__PARTITION"])
def test_misspelt_env_vars_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # pydantic-settings alone would ignore a variable that names no field.
    monkeypatch.setenv(name, "8")
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_whole_sections_as_json_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA", '{"partitions": 3}')
    monkeypatch.setenv("STREAMREC_KAFKA__TOPICS", '{"items": "catalog"}')
    settings = Settings()
    assert settings.kafka.partitions == 3
    assert settings.kafka.topics.items == "catalog"


def test_encoder_default_path_is_the_embedded_model() -> None:
    path = EncoderConfig().resolved_model_path()
    assert path.is_dir()
    assert (path / "config.json").is_file()


def test_encoder_configured_path_is_used_as_is(tmp_path: Path) -> None:
    assert EncoderConfig(model_path=tmp_path).resolved_model_path() == tmp_path


def test_encoder_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMREC_ENCODER__MODEL_PATH", str(tmp_path))
    assert Settings().encoder.resolved_model_path() == tmp_path


def test_the_readme_lists_every_setting() -> None:
    from pathlib import Path

    from streams.settings import setting_rows

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [env for env, _, _ in setting_rows() if f"| `{env}` |" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
    stale = [
        env
        for env, default, _ in setting_rows()
        if default and f"| `{env}` | `{default}` |" not in readme
    ]
    assert not stale, f"README's configuration table gives other defaults for {stale}"


def test_record_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_LIMITS__ID_BYTES", "64")
    monkeypatch.setenv("STREAMREC_LIMITS__WEIGHT_MAX", "5")
    limits = Settings().limits
    assert (limits.id_bytes, limits.weight_max, limits.text_chars) == (64, 5.0, 10_000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAMREC_LIMITS__TS_MIN", "5e9"),  # after ts_max: an empty window
        ("STREAMREC_LIMITS__WEIGHT_MAX", "inf"),
        ("STREAMREC_LIMITS__JSON_DEPTH", "1000"),  # past what the JSON parser reaches
    ],
)
def test_invalid_record_limits_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert all(e["loc"][0] == "limits" for e in info.value.errors())


def test_ray_auth_env_for_a_local_instance_and_a_cluster(tmp_path: Path) -> None:
    from streams.settings import RayConfig

    token = tmp_path / "token"
    assert RayConfig().auth_env() == {"RAY_AUTH_MODE": "token"}  # local: token auth too
    joined = RayConfig(address="ray-head:6379", auth_token_path=token)
    assert joined.auth_env() == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    assert RayConfig(auth_mode="disabled", auth_token_path=token).auth_env() == {
        "RAY_AUTH_MODE": "disabled"
    }
    environ = {"RAY_AUTH_MODE": "disabled"}  # an operator's own variable wins
    joined.apply_auth_env(environ)
    assert environ == {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN_PATH": str(token)}


@pytest.mark.parametrize(
    ("kafka", "batch"),
    [
        (KafkaConfig(), 65_536),
        (KafkaConfig(producer_batch_bytes=300_000), 300_000),
        (KafkaConfig(producer_batch_bytes=300_000, max_request_size=100_000), 100_000),
    ],
)
def test_the_worker_producer_batches_up_to_the_setting_and_the_request_limit(
    kafka: KafkaConfig, batch: int, tmp_path: Path
) -> None:
    app = create_app(Settings(data_dir=tmp_path, kafka=kafka)).app
    assert app.conf.producer_max_batch_size == batch
