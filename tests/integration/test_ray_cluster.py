"""The actors on a real multi-node Ray cluster (`ray.cluster_utils.Cluster`, 4 nodes):
the catalog, the trainer and the recommender each on its own node (custom resources).
A version the trainer publishes reaches the recommender on another node through the
catalog actor, with no directory but the catalog's own; versions only move forward; the
recommender's node removed mid-stream, the events are served once a node can host it.
The recommender reads a catalog replica on its own node, so with the catalog actor gone
for good, events on indexed items are still served."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from streams.remote import call_until_done
from streams.settings import RetryConfig
from tests.integration import themes
from workers.actors import REPLICA_NAME, Actors, start_actors
from workers.catalog import CatalogItem
from workers.config import AdapterStoreConfig, EncoderConfig, RecommendConfig, StoreConfig
from workers.recommend_io import EventIn
from workers.training import TrainingConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, dict[str, Any]]]:
    """The cluster and its nodes by role (the head runs the encoder)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    nodes = {
        role: cluster.add_node(num_cpus=1, resources={role: 1})
        for role in ("catalog", "trainer", "serving")
    }
    ray.init(address=cluster.address, namespace=f"test-{uuid.uuid4().hex[:8]}")
    try:
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def actors(tmp_path: Path) -> Actors:
    training = TrainingConfig(
        train_every_samples=10**9,  # rounds only when the test asks (train_now)
        train_every_seconds=10**9,
        steps_per_round=5,
        batch_size=16,
        negatives=8,
        gate=False,  # every round publishes: this test is about versions crossing nodes
        resources={"trainer": 1},
    )
    return start_actors(
        EncoderConfig(num_cpus=1),
        StoreConfig(url=f"edge:{tmp_path / 'qdrant'}", resources={"catalog": 1}),
        RecommendConfig(top_k=5, exact_search=True, resources={"serving": 1}, replica="node"),
        AdapterStoreConfig(path=tmp_path / "catalog-node-only"),
        training,
    )


def events(user: str, items: list[str], start: int) -> list[EventIn]:
    return [EventIn(f"{user}-{start + n}", user, i, "space") for n, i in enumerate(items)]


def serve(actors: Actors, batch: list[EventIn], states: dict[str, Any]) -> Any:
    """One recommend call as the events agent makes it: waiting out cluster failures."""
    retry = RetryConfig(backoff=0.5, max_backoff=2.0, give_up_after=180)
    call = lambda: actors.recommender.recommend.remote(batch, states)  # noqa: E731
    return asyncio.run(call_until_done(call, retry, what="recommend"))


def serving_node() -> str:
    (node,) = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("serving")]
    return str(node)


def serving_replica() -> Any:
    """The catalog replica on the serving node (created by the recommender's first read)."""
    return ray.get_actor(f"{REPLICA_NAME}-{serving_node()}")


def wait_for_version(replica: Any, version: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while ray.get(replica.version.remote()) < version:
        assert time.monotonic() < deadline, f"the replica never reached version {version}"
        time.sleep(0.05)


def test_versions_cross_nodes_and_a_removed_node_loses_no_event(
    cluster: tuple[Cluster, dict[str, Any]], tmp_path: Path
) -> None:
    ray_cluster, nodes = cluster
    a = actors(tmp_path)
    assert a.trainer is not None
    texts = themes.SPACE + themes.COOKING
    items = [CatalogItem(f"i{n}", t, "space") for n, t in enumerate(texts)]
    ray.get(a.catalog.index.remote(items, a.encoder.encode.remote(texts)))
    ids = [i.item_id for i in items]

    first = serve(a, events("u", ids[:12], 0), {})
    assert {r.model_version for r in first.results} == {0}
    more = serve(a, events("w", ids[5:25], 0), {})
    ray.get(a.trainer.add.remote(first.samples + more.samples))
    assert ray.get(a.trainer.train_now.remote()) == 1

    # The recommender (serving node) follows version 1, published by the trainer (trainer
    # node) to the catalog (catalog node): only the catalog's directory holds it. It
    # reads the replica of its node, which takes the version at its next poll. The
    # catalog's directory also holds the rounds' log (every gate decision).
    wait_for_version(serving_replica(), 1)
    after = serve(a, events("u", ids[12:14], 12), first.states)
    assert {r.model_version for r in after.results} == {1}
    assert after.states["u"].version == 1
    assert sorted(p.name for p in (tmp_path / "catalog-node-only").iterdir()) == [
        "rounds.jsonl",
        "v000001",
    ]

    # The serving node goes away mid-stream; its events wait, and are served on a new one.
    ray_cluster.remove_node(nodes["serving"])
    ray_cluster.add_node(num_cpus=1, resources={"serving": 1})
    later = serve(a, events("u", ids[14:16], 14), after.states)
    assert [r.event_id for r in later.results] == ["u-14", "u-15"]
    assert {r.model_version for r in later.results} == {1}  # the restarted actor followed
    assert later.states["u"].events == 16
    # Every actor's process froze its start-up heap, the restarted recommender's too.
    for actor in (a.encoder, a.catalog, a.trainer, a.recommender, serving_replica()):
        assert ray.get(actor.__ray_call__.remote(lambda _: gc.get_freeze_count())) > 0

    # Versions only move forward: an old version handed to the catalog changes nothing.
    files = ray.get(a.catalog.adapter.remote(1))
    assert ray.get(a.catalog.publish.remote(1, files)) == 1

    # The recommender reads the replica of its (new) node, not the catalog actor.
    replica = serving_replica()
    assert ray.get(replica.version.remote()) == 1
    where = replica.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
    assert ray.get(where) == serving_node()
    # With the catalog actor gone for good, the per-event path still answers.
    ray.kill(a.catalog, no_restart=True)
    last = serve(a, events("u", ids[16:18], 16), later.states)
    assert [r.event_id for r in last.results] == ["u-16", "u-17"]
    unseen = set(ids[18:])  # 20 items, 18 in the history: what can still be recommended
    assert [{i for i, _ in r.items} for r in last.results] == [unseen | {ids[17]}, unseen]
    assert last.states["u"].events == 18
