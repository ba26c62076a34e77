"""The local stack's Kafka settings: the consumer group its lag checks use is the
workers' Faust app id (no broker is started here)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import cast

from streams.kafka_settings import KafkaConfig
from tooling.broker import EmbeddedBroker
from tooling.local import LocalStack


def stack(env: dict[str, str] | None = None) -> LocalStack:
    broker = EmbeddedBroker(process=cast(subprocess.Popen[bytes], None), port=19092)
    return LocalStack(Path("/nonexistent"), broker, partitions=3, env=env or {})


def test_kafka_settings_are_the_workers() -> None:
    kafka = stack().kafka
    assert kafka.broker == "kafka://127.0.0.1:19092"
    assert kafka.partitions == 3
    assert kafka.app_id == KafkaConfig().app_id  # the workers' default group
    env = stack().worker_env(0)
    assert env["STREAMREC_KAFKA__BROKER"] == kafka.broker
    assert "STREAMREC_KAFKA__APP_ID" not in env or env["STREAMREC_KAFKA__APP_ID"] == kafka.app_id


def test_app_id_given_to_the_workers_is_the_group_of_the_lag_checks() -> None:
    custom = stack({"STREAMREC_KAFKA__APP_ID": "eval-run-7"})
    assert custom.kafka.app_id == "eval-run-7"
    assert custom.worker_env(0)["STREAMREC_KAFKA__APP_ID"] == custom.kafka.app_id
