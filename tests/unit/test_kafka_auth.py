"""The Kafka security settings and the one translation of them every client uses."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from streams.app import create_app
from streams.kafka_auth import KAFKA_SECURITY_FIELDS, client_kwargs, faust_credentials, ssl_context
from streams.kafka_settings import KafkaConfig
from streams.settings import Settings

PASSWORD = "hunter2-kafka-secret"


def sasl(protocol: str = "SASL_PLAINTEXT", mechanism: str = "SCRAM-SHA-512") -> KafkaConfig:
    return KafkaConfig(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="streamrec",
        sasl_password=PASSWORD,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
    )


def test_plaintext_by_default_for_every_client() -> None:
    kafka = KafkaConfig()
    assert client_kwargs(kafka) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(kafka) is None
    assert ssl_context(kafka) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_keywords_for_kafka_python_and_aiokafka(mechanism: str) -> None:
    kwargs = client_kwargs(sasl(mechanism=mechanism))
    assert kwargs == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "streamrec",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_carries_a_verifying_context() -> None:
    kwargs = client_kwargs(sasl("SASL_SSL"))
    context = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_faust_gets_the_same_settings_as_the_plain_clients() -> None:
    """What Faust hands its aiokafka clients equals what the plain clients get."""
    for kafka in (sasl(), sasl("SASL_SSL", "SCRAM-SHA-256"), KafkaConfig(security_protocol="SSL")):
        faust_side = dict(credentials_to_aiokafka_auth(faust_credentials(kafka)))
        plain_side = client_kwargs(kafka)
        assert faust_side.pop("ssl_context") is not None or "ssl_context" not in plain_side
        plain_side.pop("ssl_context", None)
        assert {k: v for k, v in faust_side.items() if k in plain_side} == plain_side


def test_the_worker_app_is_built_with_the_credentials(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka=sasl("SASL_SSL"))
    app = create_app(settings).app
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"


def test_client_certificate_is_loaded(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    kafka = KafkaConfig(security_protocol="SSL", ssl_certfile=missing, ssl_keyfile=missing)
    with pytest.raises(FileNotFoundError):
        ssl_context(kafka)  # a wrong path fails at start, not at the first connection


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"ssl_certfile": "c.pem"}, "go together"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_incomplete_or_unknown_security_is_refused(given: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaConfig.model_validate(given)


def test_every_security_setting_is_a_kafka_setting() -> None:
    assert set(KAFKA_SECURITY_FIELDS) <= set(KafkaConfig.model_fields)


def test_the_sasl_password_never_shows(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_USERNAME", "streamrec")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_PASSWORD", PASSWORD)
    settings = Settings()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == PASSWORD
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("streamrec.test").info("settings: %s / %r", settings, settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    shown.append(repr(faust_credentials(settings.kafka)))
    # An invalid setting beside it: the error names the bad value, not the password.
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_MECHANISM", "NOPE")
    with pytest.raises(ValidationError) as refused:
        Settings()
    shown.append(str(refused.value))
    for text in shown:
        assert PASSWORD not in text
    assert "**********" in repr(settings.kafka)


def test_kafka_python_configuration_logs_hide_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kafka-python's admin client logs its configuration, password included, at DEBUG
    (found by test_kafka_sasl.py); the filter streams.kafka_auth installs hides it."""
    config = {"bootstrap_servers": ["k:9092"], **client_kwargs(sasl())}
    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):
        logging.getLogger("kafka.admin.client").debug("configuration: %s", config)
        logging.getLogger("kafka.admin.client").debug("two: %s %s", config, 1)
    assert PASSWORD not in caplog.text
    assert caplog.text.count("'sasl_plain_password': '**********'") == 2
    assert "'sasl_plain_username': 'streamrec'" in caplog.text


def test_command_line_overrides_keep_the_security_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--broker`` on a command rebuilds the Kafka settings: the secret survives it."""
    from streams.cli import _settings

    monkeypatch.setenv("STREAMREC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_USERNAME", "streamrec")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_PASSWORD", PASSWORD)
    kafka = _settings(broker="k1:9093").kafka
    assert kafka.broker == "kafka://k1:9093"
    assert client_kwargs(kafka)["sasl_plain_password"] == PASSWORD
    assert PASSWORD not in repr(kafka)
