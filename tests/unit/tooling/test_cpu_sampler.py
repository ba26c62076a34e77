"""`CpuSampler` reads processes' CPU seconds over time, in a thread of its own."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tooling.bench_probes import CpuSampler

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_samples_follow_the_cpu_a_process_spends() -> None:
    with CpuSampler([os.getpid()], interval=0.02) as sampler:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # spend 0.3 s of CPU
            pass
    times = [t for t, _ in sampler.samples]
    used = [c for _, c in sampler.samples]
    assert len(sampler.samples) >= 3
    assert times == sorted(times) and used == sorted(used)
    assert used[-1] - used[0] >= 0.2  # /proc counts in ticks of 10 ms


def test_a_process_that_is_gone_counts_nothing() -> None:
    with CpuSampler([2**22 + 7], interval=0.01) as sampler:
        time.sleep(0.05)
    assert sampler.samples and all(c == 0.0 for _, c in sampler.samples)
