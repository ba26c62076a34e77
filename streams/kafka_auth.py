"""The one place that turns the Kafka security settings into what each client wants.

Every Kafka client of the project goes through here: the Faust app
(``broker_credentials``), and the plain kafka-python / aiokafka clients of the workers'
transport, ``streamrec produce``, the readers of eval and bench, and topic creation
(``client_kwargs``). Both plain libraries take the same keyword names.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

import faust

from streams.kafka_settings import KafkaConfig

KAFKA_SECURITY_FIELDS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)


SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password"})
HIDDEN = "**********"
# The loggers of kafka-python's clients; its admin client logs its whole configuration,
# SASL password included, at DEBUG (kafka/admin/client.py, "Starting KafkaAdminClient").
CLIENT_LOGGERS = ("kafka.admin.client", "kafka.producer.kafka", "kafka.consumer.group")


def _hidden(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: HIDDEN if k in SECRET_KEYS and v else v for k, v in value.items()}
    return value


class HideSecrets(logging.Filter):
    """Replaces the values of secret keys in a log record's dict arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):  # log("%s", a_dict) stores the dict itself
            record.args = _hidden(record.args)  # type: ignore[assignment]
        elif isinstance(record.args, tuple):
            record.args = tuple(_hidden(arg) for arg in record.args)
        return True


for _name in CLIENT_LOGGERS:
    logging.getLogger(_name).addFilter(HideSecrets())


def ssl_context(kafka: KafkaConfig) -> ssl.SSLContext | None:
    """A client TLS context for SSL / SASL_SSL (None for the plaintext protocols): the
    configured CA file (else the system's CAs), and the client certificate if given."""
    if not kafka.security_protocol.endswith("SSL"):
        return None
    cafile = str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None and kafka.ssl_keyfile is not None:
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile))
    return context


def client_kwargs(kafka: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments for a kafka-python or aiokafka client (producer, consumer, admin):
    ``security_protocol``, ``ssl_context`` and, with SASL, ``sasl_mechanism`` and
    ``sasl_plain_username``/``sasl_plain_password`` (both libraries use these names for
    SCRAM too)."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        kwargs["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None  # checked by KafkaConfig
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return kwargs


def faust_credentials(kafka: KafkaConfig) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's ``broker_credentials`` for these settings (None: plaintext). Faust hands
    them to its aiokafka consumers, producers and its topic creation."""
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None  # checked by KafkaConfig
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
