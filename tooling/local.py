"""A whole streamrec deployment on this machine, as separate processes.

Used by ``streamrec demo``, ``streamrec bench`` and the integration tests: an embedded
broker, topics created, and ``streamrec worker`` subprocesses (each with a local Ray
unless ``STREAMREC_RAY__ADDRESS`` is given) that can be stopped, killed and restarted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.kafka_auth import KAFKA_SECURITY_FIELDS
from streams.kafka_settings import KafkaConfig
from tooling.broker import EmbeddedBroker, create_topics, free_port, start_broker, wait_for_port
from tooling.consume import group_lag

#: A worker's /metrics: {(sample name, sorted labels): value} (`LocalStack.scrape`).
Scraped = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class LocalStack:
    workdir: Path
    broker: EmbeddedBroker
    partitions: int
    env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    metrics_ports: dict[int, int] = field(default_factory=dict)  # worker index -> port

    def metrics_port(self, index: int = 0) -> int:
        """Worker ``index``'s metrics port (a free port per index, kept across restarts)."""
        if index not in self.metrics_ports:
            self.metrics_ports[index] = free_port()
        return self.metrics_ports[index]

    def metrics_url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.metrics_port(index)}/metrics"

    def scrape(self, index: int = 0) -> Scraped:
        """{(sample name, sorted labels): value} from worker ``index``'s /metrics."""
        with urllib.request.urlopen(self.metrics_url(index), timeout=10) as answer:
            text = answer.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    @property
    def kafka(self) -> KafkaConfig:
        """The workers' Kafka settings: ``env``'s STREAMREC_KAFKA__APP_ID (their consumer
        group), __BROKER (e.g. a TLS front of the broker) and security settings win, as
        they do in the workers' environment."""
        given: dict[str, object] = {"broker": self.broker.url, "partitions": self.partitions}
        for name in ("app_id", "broker", *KAFKA_SECURITY_FIELDS):
            if (value := self.env.get(f"STREAMREC_KAFKA__{name.upper()}")) is not None:
                given[name] = value
        return KafkaConfig.model_validate(given)

    @property
    def bootstrap(self) -> list[str]:
        """host:port list of the brokers (plaintext clients; else use ``kafka``)."""
        return self.kafka.bootstrap_servers()

    def worker_env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
        env.update(
            {
                "STREAMREC_KAFKA__BROKER": self.broker.url,
                "STREAMREC_KAFKA__PARTITIONS": str(self.partitions),
                "STREAMREC_KAFKA__SESSION_TIMEOUT": "3",
                "STREAMREC_DATA_DIR": str(self.workdir / f"worker-{index}"),
                "STREAMREC_STORE__URL": f"edge:{self.workdir / 'qdrant'}",
                "STREAMREC_ADAPTERS__PATH": str(self.workdir / "adapters"),
                "STREAMREC_READY_FILE": str(self.workdir / f"worker-{index}.ready"),
                "STREAMREC_METRICS__PORT": str(self.metrics_port(index)),
                "STREAMREC_METRICS__BIND": "127.0.0.1",
                "STREAMREC_LOG_LEVEL": "INFO",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        )
        env.update(self.env)
        return env

    def start_worker(self, index: int = 0, timeout: float = 180.0) -> subprocess.Popen[bytes]:
        """Start ``streamrec worker`` and wait until it is consuming."""
        proc = self.launch_worker(index)
        self.wait_ready(index, proc, timeout)
        return proc

    def start_workers(
        self, indices: Iterable[int], timeout: float = 300.0
    ) -> list[subprocess.Popen[bytes]]:
        """Start several workers at once (one group join), then wait for each to be ready."""
        procs = [(i, self.launch_worker(i)) for i in indices]
        for index, proc in procs:
            self.wait_ready(index, proc, timeout)
        return [proc for _, proc in procs]

    def launch_worker(self, index: int) -> subprocess.Popen[bytes]:
        """Start ``streamrec worker`` number ``index`` (its own log, data dir, ready file)."""
        env = self.worker_env(index)
        Path(env["STREAMREC_READY_FILE"]).unlink(missing_ok=True)
        log = open(self.workdir / f"worker-{index}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ray's children die with it
        )
        log.close()
        self.workers.append(proc)
        return proc

    def wait_ready(self, index: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
        """Wait until worker ``index`` is consuming (its ready file exists)."""
        ready = Path(self.worker_env(index)["STREAMREC_READY_FILE"])
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {self.log_tail(index)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after {timeout}s: {self.log_tail(index)}")
            time.sleep(0.1)

    def wait_consumed(
        self,
        topic: str,
        on_lag: Callable[[int], None] | None = None,
        interval: float = 0.5,
    ) -> None:
        """Wait until the workers (consumer group ``kafka.app_id``) have committed every
        record of ``topic``, e.g. the catalog indexed; ``on_lag(records left)`` between
        checks (progress)."""
        while (lag := group_lag(self.kafka, topic)) > 0:
            if on_lag is not None:
                on_lag(lag)
            time.sleep(interval)

    def log_tail(self, index: int = 0, lines: int = 40) -> str:
        path = self.workdir / f"worker-{index}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker's whole process group (no graceful shutdown at all)."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_worker(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        """SIGTERM (graceful: Faust commits, Ray shuts down), then SIGKILL if it hangs."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_worker(proc)
        # Whatever the worker left in its group (Ray's raylet, workers) goes too.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        for proc in self.workers:
            self.stop_worker(proc)
        self.broker.stop()


@contextmanager
def local_stack(
    partitions: int = 2,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    broker: EmbeddedBroker | None = None,
) -> Iterator[LocalStack]:
    """Broker + topics now; workers on demand (``stack.start_worker()``). Cleans up all.
    ``broker``: one already started (e.g. behind a TLS front) instead of a new one."""
    with tempfile.TemporaryDirectory(prefix="streamrec-") as tmp:
        root = workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        broker = broker or start_broker(log_path=root / "broker.log")
        stack = LocalStack(root, broker, partitions, dict(env or {}))
        try:
            create_topics(stack.kafka)
            yield stack
        finally:
            stack.stop()


@dataclass
class RayNode:
    """A Ray node started with ``ray start --block`` (a head, with token auth on, or a
    node joining one), in its own process group."""

    process: subprocess.Popen[bytes]
    address: str  # host:port of the cluster's GCS

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the node's whole process group: the machine is gone, as Ray sees it."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _ray_start(
    args: list[str], log_path: Path | None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    ray_bin = Path(sys.executable).with_name("ray")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    process = subprocess.Popen(
        [str(ray_bin), "start", *args, *common],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    if log_path and not isinstance(out, int):
        out.close()
    return process


@contextmanager
def ray_head(
    num_cpus: int = 4,
    log_path: Path | None = None,
    resources: Mapping[str, float] | None = None,
    env: Mapping[str, str] | None = None,
    client_port: int | None = None,
    worker_niceness: int | None = None,
) -> Iterator[RayNode]:
    """A Ray head as an operator starts one; workers join it with
    ``STREAMREC_RAY__ADDRESS`` (and Ray's token, under ~/.ray, as the same user).
    ``env``: e.g. RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH for a token of its own;
    ``client_port``: the Ray client server's port (``ray://``), if not Ray's 10001;
    ``worker_niceness``: the actors' nice value on every node of the cluster (a system
    setting of the head; a worker's local instance uses 0, `RayConfig`). None keeps
    Ray's own 15, which the multi-node tests still run at until their checks have held
    a few CI runs at 0 (docs/ENVIRONMENT-NOTES.md, session 23)."""
    port = free_port()
    args = [
        "--head",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        "--include-dashboard=false",
    ]
    if worker_niceness is not None:
        args.append(f"--system-config={json.dumps({'worker_niceness': worker_niceness})}")
    if resources:
        args.append(f"--resources={json.dumps(dict(resources))}")
    if client_port is not None:
        args.append(f"--ray-client-server-port={client_port}")
    head = RayNode(_ray_start(args, log_path, env), f"127.0.0.1:{port}")
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield head
    finally:
        head.stop()


def ray_node(
    address: str,
    num_cpus: int = 1,
    resources: Mapping[str, float] | None = None,
    log_path: Path | None = None,
    attempts: int = 3,
    timeout: float = 120.0,
) -> RayNode:
    """Another node joining the cluster at ``address``, once it has joined (the caller
    stops or kills it). It sends the token of the head's user (``ray start --head`` turns
    token auth on, but a joining ``ray start`` only sends it when RAY_AUTH_MODE says so).
    On a busy machine a node can time out starting: it is started again, ``attempts``
    times in all."""
    args = [f"--address={address}", f"--num-cpus={num_cpus}"]
    if resources:
        args.append(f"--resources={json.dumps(dict(resources))}")
    log = log_path or Path(tempfile.mkstemp(prefix="ray-node-", suffix=".log")[1])
    for attempt in range(1, attempts + 1):
        node = RayNode(_ray_start(args, log, {"RAY_AUTH_MODE": "token"}), address)
        deadline = time.monotonic() + timeout
        while node.process.poll() is None and time.monotonic() < deadline:
            if JOINED in log.read_text(errors="replace").split(RESTARTED)[-1]:
                return node
            time.sleep(0.2)
        node.stop()
        with open(log, "a") as out:
            out.write(f"{RESTARTED} (attempt {attempt} did not join)\n")
    raise RuntimeError(f"a Ray node did not join {address} in {attempts} attempts: see {log}")


JOINED = "Ray runtime started."  # what `ray start` prints once its node has joined
RESTARTED = "--- streamrec: starting the node again"
