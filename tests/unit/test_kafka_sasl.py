"""SASL settings against a broker that requires authentication and refuses them.

Tansu 0.6.0's ``--authentication`` requires SASL of every client, but this build offers
no mechanism a client can pass with memory storage (PLAIN: "NoSharedMechanism"; SCRAM:
no user can be created before authenticating), so what is tested end to end here is the
refusal: it surfaces as an error, and the password shows in none of the errors and logs
(docs/ENVIRONMENT-NOTES.md). The keyword translation is tested in test_kafka_auth.py.
Starts a broker process and waits out kafka-python's 30 s bootstrap timeout.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from streams.kafka_settings import KafkaConfig
from tooling.broker import EmbeddedBroker, create_topics, start_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "hunter2-sasl-secret"


@pytest.fixture(scope="module")
def guarded() -> Iterator[EmbeddedBroker]:
    running = start_broker(authentication=True)
    try:
        yield running
    finally:
        running.stop()


def test_a_refused_login_fails_and_never_shows_the_password(
    guarded: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = KafkaConfig.model_validate(
        {
            "broker": guarded.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "streamrec",
            "sasl_password": PASSWORD,
        }
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as refused:
        create_topics(kafka, ["guarded"])
    assert "bootstrap" in str(refused.value).lower()  # no broker would talk to it
    assert caplog.records, "kafka-python logged nothing at DEBUG: the check below is empty"
    for text in ("".join(traceback.format_exception(refused.value)), caplog.text):
        assert PASSWORD not in text
