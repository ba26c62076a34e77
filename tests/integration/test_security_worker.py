"""A whole `streamrec worker` (Faust, Ray, the language model, the Qdrant engine) whose
every Kafka connection is TLS with a client certificate: the broker sits behind a TLS
front that requires one (tests/tls.py; Tansu 0.6.0 cannot serve TLS itself) and
advertises only the front. Items are indexed and every event gets its recommendation;
a worker without the client certificate gets nothing from the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import themes
from tests.integration.helpers import event, item, recommendations_for, send_events, send_items
from tests.tls import Certs, TlsFront, make_certs, server_context
from tooling.broker import free_port, start_broker
from tooling.local import LocalStack, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tls_env(port: int, certs: Certs) -> dict[str, str]:
    return {
        "STREAMREC_KAFKA__BROKER": f"kafka://127.0.0.1:{port}",
        "STREAMREC_KAFKA__SECURITY_PROTOCOL": "SSL",
        "STREAMREC_KAFKA__SSL_CAFILE": str(certs.ca),
        "STREAMREC_KAFKA__SSL_CERTFILE": str(certs.client),
        "STREAMREC_KAFKA__SSL_KEYFILE": str(certs.client_key),
        "STREAMREC_TRAINING__MODE": "zero-shot",
    }


@pytest.fixture
def tls_stack(tmp_path: Path) -> Iterator[tuple[LocalStack, TlsFront]]:
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    broker = start_broker(advertised_port=port, log_path=tmp_path / "broker.log")
    with TlsFront(port, broker.port, server_context(certs, client_certs=True)) as front:
        env = tls_env(port, certs)
        with local_stack(2, env=env, workdir=tmp_path / "stack", broker=broker) as stack:
            yield stack, front


def test_a_worker_serves_over_tls_with_client_certificates(
    tls_stack: tuple[LocalStack, TlsFront],
) -> None:
    stack, front = tls_stack
    assert stack.kafka.security_protocol == "SSL"  # the tooling's clients too
    stack.start_worker()
    catalog = [item(f"space-{n}", text, "tls") for n, text in enumerate(themes.SPACE)]
    catalog += [item(f"cook-{n}", text, "tls") for n, text in enumerate(themes.COOKING)]
    send_items(stack, catalog)
    now = time.time()
    events = [
        event(f"e-{u}-{n}", f"user-{u}", f"space-{n}", now + n, "tls")
        for u in range(4)
        for n in range(3)
    ]
    send_events(stack, events)
    recs = recommendations_for(stack, {e["event_id"] for e in events})
    assert {e["event_id"] for e in events} <= set(recs)
    assert all(r.value["items"] for got in recs.values() for r in got)
    assert front.accepted > 0


def test_a_worker_without_the_client_certificate_is_refused(
    tls_stack: tuple[LocalStack, TlsFront],
) -> None:
    stack, front = tls_stack
    del stack.env["STREAMREC_KAFKA__SSL_CERTFILE"], stack.env["STREAMREC_KAFKA__SSL_KEYFILE"]
    before = front.accepted
    proc = stack.launch_worker(0)
    with pytest.raises(RuntimeError, match="worker exited") as refused:
        stack.wait_ready(0, proc, timeout=120)
    stack.kill_worker(proc)
    # Its Kafka clients found no broker that would talk to them, and it stopped.
    assert "KafkaConnectionError: Unable to bootstrap" in str(refused.value)
    assert front.accepted == before  # not one TLS connection got through
