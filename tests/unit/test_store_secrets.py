"""The Qdrant API key never shows: not in settings' reprs or logs, and not in the errors,
retry logs and dead letters that follow a server refusing the store, even a server
that echoes the request's headers in its answer."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams import deadletters
from streams.remote import GaveUp, call_until_done
from streams.schemas import dumps
from streams.settings import RetryConfig, Settings
from tests.tls import Certs, make_certs, server_context
from workers.store import StoreError, open_store
from workers.store.qdrant_client_store import QdrantClientStore

API_KEY = "qdrant-key-5f2b9e0c1d"


class EchoingRefusal(BaseHTTPRequestHandler):
    """A Qdrant stand-in that refuses every request, quoting the api-key header back."""

    def _refuse(self) -> None:
        body = json.dumps(
            {"status": {"error": f"forbidden: api-key {self.headers.get('api-key')}"}}
        ).encode()
        self.send_response(403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _refuse

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the project's logs, not the server's."""


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingRefusal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_api_key_is_a_secret_in_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STREAMREC_STORE__URL", "https://qdrant.internal:6333")
    monkeypatch.setenv("STREAMREC_STORE__API_KEY", API_KEY)
    settings = Settings()
    assert settings.store.api_key is not None
    assert settings.store.api_key.get_secret_value() == API_KEY
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("streamrec.test").info("%s %r", settings, settings.store)
    for text in (repr(settings), str(settings.store), settings.model_dump_json(), caplog.text):
        assert API_KEY not in text


def test_a_refusing_server_never_gets_the_key_into_errors_logs_or_dead_letters(
    refusing_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The server really does echo it: without the scrubbing it would be in the error.
    with (
        pytest.warns(UserWarning, match="insecure connection"),  # qdrant-client's, over http
        pytest.raises(StoreError) as refused,
    ):
        open_store(refusing_server, dim=4, api_key=API_KEY)
    error = refused.value
    assert "403" in str(error)
    assert "<api key>" in str(error)  # where the server quoted it
    chain = "".join(traceback.format_exception(error))
    assert API_KEY not in chain
    assert error.__cause__ is None  # the raw client error quoted the key: left out

    # A worker retrying the store, giving up, and dead-lettering the batch.
    async def submit() -> None:
        raise error

    retry = RetryConfig(backoff=0.01, max_backoff=0.02, give_up_after=0.05)
    with caplog.at_level(logging.DEBUG), pytest.raises(GaveUp) as gave_up:
        asyncio.run(call_until_done(submit, retry, what="catalog index"))
    assert "retrying" in caplog.text  # the retry path logged the store's error
    letter = deadletters.letter("items", 0, 7, b"item-1", str(gave_up.value), b"{}")
    shown = [str(gave_up.value), dumps(letter).decode(), caplog.text]
    shown.append("".join(traceback.format_exception(gave_up.value)))
    for text in shown:
        assert API_KEY not in text
    assert "forbidden: api-key <api key>" in letter.error


def test_an_error_without_the_key_keeps_its_cause(refusing_server: str) -> None:
    """Without a key nothing is hidden: the client's own error stays in the chain."""
    with pytest.raises(StoreError) as refused:
        QdrantClientStore(dim=4, url=refusing_server)
    assert refused.value.__cause__ is not None
    assert "api-key None" in str(refused.value)


@pytest.fixture
def refusing_https_server(tmp_path: Path) -> Iterator[tuple[str, Certs]]:
    certs = make_certs(tmp_path / "certs")
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingRefusal)
    server.socket = server_context(certs, client_certs=False).wrap_socket(
        server.socket, server_side=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", certs
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_key_travels_over_https_checked_against_the_configured_ca(
    refusing_https_server: tuple[str, Certs],
) -> None:
    url, certs = refusing_https_server
    # The server's answer (403, quoting the key it received) proves the TLS request went.
    with pytest.raises(StoreError, match="forbidden: api-key <api key>") as refused:
        open_store(url, dim=4, api_key=API_KEY, ca_file=certs.ca)
    assert API_KEY not in "".join(traceback.format_exception(refused.value))
    # Another CA: the certificate check fails before any request (and any key) is sent.
    with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED") as untrusted:
        open_store(url, dim=4, api_key=API_KEY, ca_file=certs.stranger_ca)
    assert API_KEY not in "".join(traceback.format_exception(untrusted.value))
