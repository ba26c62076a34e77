"""Ray token authentication as a streamrec worker sets it up (STREAMREC_RAY__AUTH_MODE,
STREAMREC_RAY__AUTH_TOKEN_PATH), with a local instance and with an existing cluster
(joined at its GCS address, and through the Ray client, ray://):
a driver holding the token gets in and runs a task, one with another token or none is
refused. Tokens live in tmp files, never in the shared ~/.ray."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tooling.broker import free_port, wait_for_port
from tooling.local import ray_head

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What `streamrec worker` does before its Faust worker starts (streams/cli.py), then a task.
DRIVER = """
import os, sys
from streams.settings import Settings
settings = Settings()
settings.ray.apply_auth_env(os.environ)
from streams.worker import init_ray
init_ray(settings.ray)
import ray
print("ADDRESS", ray.get_runtime_context().gcs_address, flush=True)
print("ANSWER", ray.get(ray.remote(lambda: 6 * 7).remote()), flush=True)
if "--hold" in sys.argv:
    sys.stdin.readline()
"""

# A client that is not streamrec: plain ray.init with whatever RAY_AUTH_* it is given.
INTRUDER = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
print("ANSWER", ray.get(ray.remote(lambda: 6 * 7).remote()), flush=True)
"""


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMREC_", "RAY_AUTH_", "RAY_ADDRESS"))
    }
    env.update(extra)
    return env


def token_file(path: Path) -> Path:
    path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    return path


SERVER_EXITED = ("Starting Ray client server failed", "psutil.ZombieProcess")


def run(script: str, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=240,
        start_new_session=True,
    )


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    out = result.stdout + result.stderr
    return (
        result.returncode != 0
        and "ANSWER" not in result.stdout
        and "AuthenticationError: RPC error: InvalidAuthToken" in out
    )


@contextmanager
def local_instance(token: Path) -> Iterator[str]:
    """A driver that started Ray locally with the token (as a worker without
    STREAMREC_RAY__ADDRESS does), held open; yields its GCS address."""
    env = clean_env({"STREAMREC_RAY__NUM_CPUS": "1", "STREAMREC_RAY__AUTH_TOKEN_PATH": str(token)})
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, "--hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith("ADDRESS "), lines
        assert lines[1].strip() == "ANSWER 42", lines
        yield lines[0].split()[1]
    finally:
        with suppress(BrokenPipeError):
            proc.stdin.write("\n")
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what Ray left in the group


def test_a_local_instance_runs_with_the_configured_token(tmp_path: Path) -> None:
    token = token_file(tmp_path / "token")
    wrong = token_file(tmp_path / "other-token")
    with local_instance(token) as address:
        friend = run(
            DRIVER,
            {"STREAMREC_RAY__ADDRESS": address, "STREAMREC_RAY__AUTH_TOKEN_PATH": str(token)},
        )
        assert "ANSWER 42" in friend.stdout, friend.stderr[-2000:]
        stranger = run(
            INTRUDER, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)}, address
        )
        assert refused(stranger), stranger.stderr[-2000:]
        anonymous = run(INTRUDER, {"RAY_AUTH_MODE": "disabled"}, address)
        assert refused(anonymous), anonymous.stderr[-2000:]


def test_joining_an_existing_cluster_needs_its_token(tmp_path: Path) -> None:
    token = token_file(tmp_path / "token")
    wrong = token_file(tmp_path / "other-token")
    head_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    with ray_head(num_cpus=1, log_path=tmp_path / "head.log", env=head_env) as head:
        worker = {"STREAMREC_RAY__ADDRESS": head.address}
        joined = run(DRIVER, {**worker, "STREAMREC_RAY__AUTH_TOKEN_PATH": str(token)})
        assert "ANSWER 42" in joined.stdout, joined.stderr[-2000:]
        other = run(DRIVER, {**worker, "STREAMREC_RAY__AUTH_TOKEN_PATH": str(wrong)})
        assert refused(other), other.stderr[-2000:]
        without = run(DRIVER, {**worker, "STREAMREC_RAY__AUTH_MODE": "disabled"})
        assert refused(without), without.stderr[-2000:]


def test_the_ray_client_needs_the_token_too(tmp_path: Path) -> None:
    """ray://, as deploy/ connects workers to a cluster (the Ray client server)."""
    token = token_file(tmp_path / "token")
    wrong = token_file(tmp_path / "other-token")
    head_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port = free_port()
    with ray_head(num_cpus=1, log_path=tmp_path / "head.log", env=head_env, client_port=port):
        wait_for_port("127.0.0.1", port, timeout=120)
        worker = {"STREAMREC_RAY__ADDRESS": f"ray://127.0.0.1:{port}"}
        for _ in range(3):
            joined = run(DRIVER, {**worker, "STREAMREC_RAY__AUTH_TOKEN_PATH": str(token)})
            # The Ray client's per-client server process sometimes exits at once on this
            # shared machine (1 run in 3; its log is empty): Ray's fault, not the token's.
            # The proxy reports it as a failed start or, when it looks first, as a
            # zombie (psutil.ZombieProcess, seen with the 2 cores busy).
            if not any(sign in joined.stderr for sign in SERVER_EXITED):
                break
        assert "ANSWER 42" in joined.stdout, joined.stderr[-3000:]
        other = run(DRIVER, {**worker, "STREAMREC_RAY__AUTH_TOKEN_PATH": str(wrong)})
        # The Ray client reports a refused token as a timeout (the same head accepted
        # the right one a moment before).
        assert "ANSWER" not in other.stdout and other.returncode != 0
        assert "ConnectionError: ray client connection timeout" in other.stderr
