"""A local Ray instance started by a streamrec worker runs its actors at
`STREAMREC_RAY__WORKER_NICENESS` (default 0), not at Ray's own 15: on CPUs shared with
the Faust worker and the broker, the Recommender serving waits for is not pushed back.
A head `tooling.local` starts with `ray start` takes the value for the whole cluster,
joined nodes included (None: Ray's own 15, which the multi-node tests keep for now)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tooling.local import ray_head, ray_node

pytestmark = pytest.mark.integration

# What `streamrec worker` does before its Faust worker starts (streams/cli.py), then an
# actor reports its process's nice value.
DRIVER = """
import os
from streams.settings import Settings
settings = Settings()
settings.ray.apply_auth_env(os.environ)
from streams.worker import init_ray
init_ray(settings.ray)
import ray

@ray.remote
class Probe:
    def nice(self) -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

# On the node that holds the "joined" resource when there is one (a joining node).
joined = {"joined": 0.01} if ray.cluster_resources().get("joined") else {}
print("NICE", ray.get(Probe.options(resources=joined).remote().nice.remote()), flush=True)
ray.shutdown()
"""


def reported_nice(env: dict[str, str]) -> list[str]:
    """What the driver's actor reports, run with ``env`` over a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMREC_", "RAY_ADDRESS"))}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=240,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("NICE")]


@pytest.mark.parametrize(("setting", "expected"), [(None, 0), ("7", 7)])
def test_actors_run_at_the_configured_nice_value(setting: str | None, expected: int) -> None:
    env = {"STREAMREC_RAY__NUM_CPUS": "1", "STREAMREC_RAY__AUTH_MODE": "disabled"}
    if setting is not None:
        env["STREAMREC_RAY__WORKER_NICENESS"] = setting
    assert reported_nice(env) == [str(expected)]


# Two clusters of about 45 s each on 2 cores: Ray's own value, and the one the
# multi-node tests are meant to move to (any value but 15 shows it was passed on).
@pytest.mark.parametrize(("niceness", "expected"), [(None, 15), (0, 0)])
def test_a_ray_start_cluster_runs_actors_at_its_nice_value(
    tmp_path: Path, niceness: int | None, expected: int
) -> None:
    """`ray_head` (Ray's own 15, or the value given) and a node that joins it."""
    with ray_head(num_cpus=1, log_path=tmp_path / "head.log", worker_niceness=niceness) as head:
        node = ray_node(
            head.address, num_cpus=1, resources={"joined": 1}, log_path=tmp_path / "node.log"
        )
        try:
            reported = reported_nice({"STREAMREC_RAY__ADDRESS": head.address})
        finally:
            node.stop()
    assert reported == [str(expected)]
