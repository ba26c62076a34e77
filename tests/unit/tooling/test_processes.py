"""The /proc reader the bench and the fault suite use, on this test's own process."""

from __future__ import annotations

import os

import pytest

from tooling.processes import actor_class, ancestors, descendants, processes, rss_mb


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
