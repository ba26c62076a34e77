"""What one backend does beyond the contract (the edge store's lock, crash safety,
optimize and flush) and how `open_store` picks a backend from a URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.unit.store.helpers import DIM, assert_matches, brute_force, make_items, search_one
from workers.store import SearchRequest, StoreError, VectorStore, open_store, point_id
from workers.store.edge import EdgeStore
from workers.store.qdrant_client_store import QdrantClientStore


def test_edge_second_open_is_refused_until_close(tmp_path: Path) -> None:
    url = f"edge:{tmp_path}"
    first = open_store(url, dim=DIM)
    try:
        with pytest.raises(StoreError):
            open_store(url, dim=DIM)
    finally:
        first.close()
    second = open_store(url, dim=DIM)
    second.close()


def test_edge_upsert_survives_process_kill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from workers.store import ItemPoint, open_store
        store = open_store({f"edge:{tmp_path}"!r}, dim={DIM})
        rng = np.random.default_rng(5)
        vecs = rng.standard_normal((50, {DIM})).astype(np.float32)
        store.upsert([ItemPoint(f"k-{{i}}", "a", "t", vecs[i], vecs[i]) for i in range(50)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    root = Path(__file__).resolve().parents[3]  # the project, above tests/unit/store/
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, check=False)
    assert done.returncode == -signal.SIGKILL
    store = open_store(f"edge:{tmp_path}", dim=DIM)
    try:
        assert store.count() == 50
        vecs = np.random.default_rng(5).standard_normal((50, DIM)).astype(np.float32)
        assert search_one(store, SearchRequest(vecs[17], 1))[0].item_id == "k-17"
    finally:
        store.close()


def test_edge_optimize_and_flush_keep_results(tmp_path: Path) -> None:
    items = make_items(50)
    store = EdgeStore(tmp_path / "shard", dim=DIM, optimize_every=10)
    try:
        store.upsert(items)
        store.optimize()
        store.flush()
        assert_matches(
            search_one(store, SearchRequest(items[3].rec, 5)), brute_force(items, items[3].rec, 5)
        )
    finally:
        store.close()


def test_point_id_is_stable_uuid() -> None:
    assert point_id("item-1") == point_id("item-1")
    assert point_id("item-1") != point_id("item-2")
    assert str(point_id("item-1")) == "340bf97a-242d-5472-98bc-8ff635fc90a0"


@pytest.mark.parametrize(
    ("url", "kind", "where"),
    [
        ("edge:rel/dir", EdgeStore, "rel/dir/items"),
        ("edge://rel2", EdgeStore, "rel2/items"),
        ("edge:///ABS/dir", EdgeStore, "dir/items"),
        ("local:loc", QdrantClientStore, "loc/collection/items"),
        ("local::memory:", QdrantClientStore, None),
    ],
)
def test_open_store_url_forms(
    url: str,
    kind: type[VectorStore],
    where: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url.replace("/ABS", str(tmp_path)), dim=DIM)
    try:
        assert isinstance(store, kind)
        assert store.dim == DIM
        store.upsert(make_items(1))
        if where is not None:
            assert (tmp_path / where).is_dir()
    finally:
        store.close()


def test_open_store_http_targets_a_server() -> None:
    # Nothing listens on port 1: the server store is built, fails to connect, and says so.
    with pytest.raises(StoreError, match="collection"):
        open_store("http://127.0.0.1:1", dim=DIM)


@pytest.mark.parametrize(
    "url", ["", "qdrant://host", "edge:", "edge://", "local:", "ftp://x", "memory", "http://"]
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?s)edge:.*local::memory:.*http://") as caught:
        open_store(url, dim=DIM)
    assert repr(url) in str(caught.value)


@pytest.mark.parametrize("collection", ["", "a/b", ".."])
def test_open_store_rejects_bad_collection(collection: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collection"):
        open_store(f"edge:{tmp_path}", dim=DIM, collection=collection)
    assert not any(tmp_path.iterdir())
