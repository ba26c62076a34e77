"""Shared test configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _ray_auth_as_the_workers() -> None:
    """The tests' own Ray clients (joining a worker's local Ray, a `ray start` cluster,
    ray.cluster_utils) authenticate as `streamrec worker` does: Ray reads RAY_AUTH_* once,
    when it is imported, so this runs before any test module imports it."""
    from streams.settings import RayConfig

    RayConfig().apply_auth_env(os.environ)


_ray_auth_as_the_workers()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the project (../shared/data), read in place."""
    if not (SHARED_DATA / "ml-100k" / "u.data").exists():
        pytest.fail(f"shared datasets not found at {SHARED_DATA} (set SHARED_DATA_DIR)")
    return SHARED_DATA
