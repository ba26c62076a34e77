"""A local Ray instance started by a streamrec worker runs its actors at
`STREAMREC_RAY__WORKER_NICENESS` (default 0), not at Ray's own 15: on CPUs shared with
the Faust worker and the broker, the Recommender serving waits for is not pushed back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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

print("NICE", ray.get(Probe.remote().nice.remote()), flush=True)
ray.shutdown()
"""


@pytest.mark.parametrize(("setting", "expected"), [(None, 0), ("7", 7)])
def test_actors_run_at_the_configured_nice_value(setting: str | None, expected: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMREC_", "RAY_ADDRESS"))}
    env["STREAMREC_RAY__NUM_CPUS"] = "1"
    env["STREAMREC_RAY__AUTH_MODE"] = "disabled"
    if setting is not None:
        env["STREAMREC_RAY__WORKER_NICENESS"] = setting
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reported = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("NICE")]
    assert reported == [str(expected)], result.stdout
