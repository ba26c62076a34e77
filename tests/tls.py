"""Test-only TLS: a throwaway CA and certificates (``openssl`` command line), and a TLS
front for the embedded broker.

The embedded broker (Tansu 0.6.0) cannot serve TLS itself: its ``--cert`` and ``--key``
flags are mutually exclusive in that build, and either alone leaves the listener in
plaintext (docs/ENVIRONMENT-NOTES.md). ``TlsFront`` terminates TLS on one port and relays
the bytes to the broker's plaintext port, while the broker advertises the front's
address: every client connection then goes through TLS, as it would to a TLS broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate (what clients trust)
    server: Path  # certificate for 127.0.0.1 / localhost, signed by the CA
    server_key: Path
    client: Path  # a client certificate signed by the CA (mutual TLS)
    client_key: Path
    stranger_ca: Path  # another CA, which signed nothing of the above


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, subject: str, ext: str, cwd: Path) -> None:
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", subject, cwd=cwd,
    )  # fmt: skip
    (cwd / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "stranger"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
            "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=streamrec test {ca}",
            cwd=directory,
        )  # fmt: skip
    _signed(
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        directory,
    )
    _signed("client", "/CN=streamrec-worker", "extendedKeyUsage=clientAuth\n", directory)
    return Certs(
        ca=directory / "ca.pem",
        server=directory / "server.pem",
        server_key=directory / "server.key",
        client=directory / "client.pem",
        client_key=directory / "client.key",
        stranger_ca=directory / "stranger.pem",
    )


def server_context(certs: Certs, *, client_certs: bool) -> ssl.SSLContext:
    """The front's TLS context; ``client_certs``: require a client certificate of the CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.server), str(certs.server_key))
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(certs.ca))
    return context


class TlsFront:
    """Listens with TLS on 127.0.0.1:``port`` and relays each connection to
    127.0.0.1:``upstream`` in plaintext, in a thread of its own. Counts the connections
    whose handshake succeeded (``accepted``)."""

    def __init__(self, port: int, upstream: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.upstream = upstream
        self.context = context
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-front", daemon=True)

    def __enter__(self) -> TlsFront:
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise TimeoutError("the TLS front did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        # The other side going away ends the relay, and closes this side too.
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
            await writer.wait_closed()
