"""The project's Kafka clients over TLS (with client certificates) to a real broker.

The embedded broker sits behind a TLS front (tests/tls.py: this Tansu build cannot
serve TLS itself) that requires a client certificate of the test CA; the broker
advertises the front, so every connection of every client goes through TLS. Starts a
broker process, hence the ``integration`` mark.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka_auth import client_kwargs, ssl_context
from streams.kafka_settings import KafkaConfig
from streams.transport import true_highwaters
from tests.tls import Certs, TlsFront, make_certs, server_context
from tooling.broker import EmbeddedBroker, create_topics, free_port, start_broker
from tooling.consume import TopicReader, group_lag
from tooling.produce import kafka_producer, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def front(certs: Certs) -> Iterator[tuple[EmbeddedBroker, TlsFront]]:
    port = free_port()
    broker = start_broker(advertised_port=port)
    try:
        with TlsFront(port, broker.port, server_context(certs, client_certs=True)) as tls:
            yield broker, tls
    finally:
        broker.stop()


def tls_kafka(front: TlsFront, certs: Certs, **changes: object) -> KafkaConfig:
    settings: dict[str, object] = {
        "broker": f"127.0.0.1:{front.port}",
        "partitions": 2,
        "security_protocol": "SSL",
        "ssl_cafile": certs.ca,
        "ssl_certfile": certs.client,
        "ssl_keyfile": certs.client_key,
    }
    return KafkaConfig.model_validate({**settings, **changes})


def kept_open(kafka: KafkaConfig, port: int) -> bool:
    """Connect to the front with ``kafka``'s client TLS context: True if the front keeps
    the connection (accepted), False if it closes it (refused). A client that refuses
    the server's certificate raises ``ssl.SSLCertVerificationError``."""
    context = ssl_context(kafka)
    assert context is not None
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # With TLS 1.3 the server checks the client's certificate after the client's
        # handshake ends: a refusal shows on the first read, as the connection closing.
        assert tls.version() == "TLSv1.3"
        tls.settimeout(1)
        try:
            return tls.recv(1) != b""
        except TimeoutError:
            return True  # nothing to read, still open
        except ssl.SSLError:
            return False


def test_admin_producer_reader_and_lag_over_tls(
    front: tuple[EmbeddedBroker, TlsFront], certs: Certs
) -> None:
    _, tls = front
    kafka = tls_kafka(tls, certs)
    before = tls.accepted
    assert sorted(create_topics(kafka, ["secure"])) == ["secure"]  # kafka-python admin
    producer = kafka_producer(kafka)
    try:
        records = [{"user_id": f"u{i}", "n": i} for i in range(20)]
        assert produce(producer, "secure", records, "user_id") == 20
    finally:
        producer.close()
    with TopicReader(kafka, ["secure"]) as reader:
        got = reader.read_until(lambda seen: len(seen) >= 20, timeout=30)
    assert sorted(r.value["n"] for r in got) == list(range(20))
    assert group_lag(kafka, "secure", group="nobody") == 20  # nothing committed by it
    assert tls.accepted > before  # the clients went through the TLS front


def test_aiokafka_transport_reads_over_tls(
    front: tuple[EmbeddedBroker, TlsFront], certs: Certs
) -> None:
    """The workers' own aiokafka path (the transport's changelog end check)."""
    _, tls = front
    kafka = tls_kafka(tls, certs)
    create_topics(kafka, ["secure-changelog"])
    producer = kafka_producer(kafka)
    try:
        produce(producer, "secure-changelog", [{"user_id": "u", "n": n} for n in range(5)], "x")
    finally:
        producer.close()
    tps = [TopicPartition("secure-changelog", p) for p in range(2)]

    async def ends() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers(), **client_kwargs(kafka)
        )
        await consumer.start()
        try:
            listed = dict(await consumer.end_offsets(tps))
        finally:
            await consumer.stop()
        return await true_highwaters(kafka, listed)

    assert sum(asyncio.run(ends()).values()) == 5


def test_the_front_refuses_clients_without_the_right_certificates(
    front: tuple[EmbeddedBroker, TlsFront], certs: Certs
) -> None:
    _, tls = front
    assert kept_open(tls_kafka(tls, certs), tls.port)
    # No client certificate: the front (like a broker with ssl.client.auth=required) says no.
    before = tls.accepted
    anonymous = tls_kafka(tls, certs, ssl_certfile=None, ssl_keyfile=None)
    assert not kept_open(anonymous, tls.port)
    assert tls.accepted == before
    # A CA that did not sign the broker's certificate: the client says no.
    stranger = tls_kafka(tls, certs, ssl_cafile=certs.stranger_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        kept_open(stranger, tls.port)
