"""The /proc reader the bench and the fault suite use, on this test's own process."""

from __future__ import annotations

import os
import time

import pytest

from tooling.bench_probes import cpu_ms_per_event
from tooling.processes import (
    actor_class,
    ancestors,
    cpu_seconds,
    descendants,
    processes,
    ray_address_of,
    rss_mb,
)


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("ray::Catalog", "Catalog"),
        ("ray::Catalog.changes_since", "Catalog"),
        ("ray::CatalogReplica.lookup", "CatalogReplica"),
        ("ray::IDLE", None),
        ("ray::DashboardAgent", None),
        ("/usr/bin/python", None),
    ],
)
def test_actor_class_reads_ray_titles(title: str, name: str | None) -> None:
    assert actor_class(title) == name


def test_this_process_its_parent_and_memory() -> None:
    me = processes()[os.getpid()]
    assert me.ppid == os.getppid()
    assert os.getppid() in ancestors(os.getpid())
    assert os.getpid() in {p.pid for p in descendants(os.getppid())}
    assert rss_mb(os.getpid()) > 10 and rss_mb(-1) == 0.0


def test_cpu_seconds_move_with_work_and_split_per_event() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of this process's CPU
        pass
    used = cpu_seconds(os.getpid()) - before
    assert 0.2 <= used <= 5.0
    assert cpu_seconds(2**22 + 7) == 0.0  # no such process
    assert cpu_ms_per_event({"worker": 1.0}, {"worker": 3.0, "broker": 0.5}, 1000) == {
        "broker": 0.5,
        "worker": 2.0,
    }


def test_no_ray_address_for_a_process_that_started_no_ray() -> None:
    assert ray_address_of(os.getpid()) is None
