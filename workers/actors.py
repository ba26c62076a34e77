"""The one place where the plain worker classes become Ray actors.

`start_actors` connects the encoder, the catalog, the trainer and the recommender:

    catalog batch ──► EncoderActor.encode ──► CatalogActor.index
    item tombstones ──► CatalogActor.delete (ids on the change feed: replicas drop them)
    event batch   ──► RecommenderActor.recommend ──► ReplicaActor of its node
                      (lookup/search_at; event text: the recommender's own LazyEncoder)
    ReplicaActor  ··· every sync_interval ··► CatalogActor.changes_since
    samples       ──► TrainerActor.add ··· round ··► CatalogActor.publish(v+1, files)
    forget record ──► TrainerActor.forget(user ids) (their samples dropped)

The encoder, the catalog and the trainer are named, detached actors (``get_if_exists``),
so every streamrec worker process attached to the same Ray cluster shares one catalog
and one online model; they are off the per-event path. Each node that runs a
recommender gets one catalog replica (named by the node), which its recommenders read.
An actor reaches another through `RemoteCatalog`/`NodeCatalog`, which give a handle the
plain interface the classes were written against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workers.adapters.io import AdapterFiles
from workers.catalog import Catalog, Changes, Cursor
from workers.config import AdapterStoreConfig, EncoderConfig, RecommendConfig, StoreConfig
from workers.encoder import LazyEncoder, TextEncoder
from workers.gc_heap import freeze_heap
from workers.model import Vector
from workers.recommender import Recommender
from workers.replica import CatalogReplica
from workers.store import Hit, SearchRequest
from workers.trainer_service import TrainerService, TrainingCatalog
from workers.training import TrainingConfig
from workers.wire import HitLists, SearchRequests, VectorMap

ENCODER_NAME = "streamrec-encoder"
CATALOG_NAME = "streamrec-catalog"
TRAINER_NAME = "streamrec-trainer"
REPLICA_NAME = "streamrec-replica"


class RemoteCatalog:
    """`CatalogReader` and `TrainingCatalog` over a catalog actor handle (inside another actor:
    these block that actor's thread, never an event loop)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]:
        result: tuple[int, dict[str, Vector]] = ray.get(self.handle.lookup.remote(list(item_ids)))
        return result

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        result: tuple[int, list[list[Hit]]] = ray.get(self.handle.search_at.remote(list(requests)))
        return result

    def items(self, item_ids: Sequence[str]) -> dict[str, tuple[Vector, str]]:
        result: dict[str, tuple[Vector, str]] = ray.get(self.handle.items.remote(list(item_ids)))
        return result

    def indexed_since(self, log_id: str | None, position: int) -> tuple[str, int, list[str]]:
        result: tuple[str, int, list[str]] = ray.get(
            self.handle.indexed_since.remote(log_id, position)
        )
        return result

    def adapter(self, version: int) -> AdapterFiles | None:
        result: AdapterFiles | None = ray.get(self.handle.adapter.remote(version))
        return result

    def publish(self, version: int, files: AdapterFiles) -> int:
        return int(ray.get(self.handle.publish.remote(version, files)))

    def log_round(self, entry: Mapping[str, Any]) -> None:
        ray.get(self.handle.log_round.remote(dict(entry)))

    def latest(self) -> tuple[int, AdapterFiles | None]:
        result: tuple[int, AdapterFiles | None] = ray.get(self.handle.latest.remote())
        return result

    def changes_since(self, cursor: Cursor | None) -> Changes:
        result: Changes = ray.get(self.handle.changes_since.remote(cursor))
        return result


def _as_training_catalog(catalog: RemoteCatalog) -> TrainingCatalog:
    return catalog  # mypy checks here that RemoteCatalog has every method the trainer calls


def _freezing(cls: type) -> type:
    """``cls`` as an actor's class: once an instance is built (its process started, its
    model loaded), the process's Python heap is frozen out of garbage collection
    (`workers.gc_heap`). Same name, so Ray's process titles (``ray::Recommender``) stay;
    the plain class, used in-process by tests, freezes nothing."""

    base_init: Callable[..., None] = vars(cls)["__init__"]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        freeze_heap(cls.__name__)

    fields = {"__init__": __init__, "__doc__": cls.__doc__, "__qualname__": cls.__name__}
    return type(cls.__name__, (cls,), fields)


# Typed as Any: handles are dynamic proxies (`handle.method.remote(...)`).
EncoderActor: Any = ray.remote(_freezing(TextEncoder))
CatalogActor: Any = ray.remote(_freezing(Catalog))
ReplicaActor: Any = ray.remote(_freezing(CatalogReplica))
RecommenderActor: Any = ray.remote(_freezing(Recommender))
TrainerActor: Any = ray.remote(_freezing(TrainerService))


class NodeCatalog:
    """`CatalogReader` of a recommender: reads go to the catalog replica of the node this
    process runs on (created there if absent), or with ``own`` to a replica in this
    process; adapter files to the catalog itself.

    Resolved in the process that reads (a restarted recommender on another node finds
    that node's replica), so it pickles unresolved."""

    def __init__(self, catalog: Any, dim: int, config: StoreConfig, own: bool = False) -> None:
        self.catalog, self.dim, self.config, self.own = catalog, dim, config, own
        self.replica: Any = None
        self.local: CatalogReplica | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "replica": None, "local": None}

    def _replica(self) -> Any:
        if self.replica is None:
            self.replica = node_replica(self.catalog, self.dim, self.config)
        return self.replica

    def _local(self) -> CatalogReplica:
        if self.local is None:
            self.local = CatalogReplica(RemoteCatalog(self.catalog), self.dim, self.config)
        return self.local

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, Mapping[str, Vector]]:
        if self.own:
            return self._local().lookup(item_ids)
        result: tuple[int, VectorMap] = ray.get(self._replica().lookup.remote(list(item_ids)))
        return result

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, HitLists]:
        if self.own:
            return self._local().search_at(requests)
        asked = SearchRequests(requests)
        result: tuple[int, HitLists] = ray.get(self._replica().search_at.remote(asked))
        return result

    def adapter(self, version: int) -> AdapterFiles | None:
        result: AdapterFiles | None = ray.get(self.catalog.adapter.remote(version))
        return result

    def version(self) -> int:
        """The replica's version (-1: no copy yet): the recommender's health check."""
        if self.own:
            return self._local().version()
        return int(ray.get(self._replica().version.remote()))


def node_replica(catalog: Any, dim: int, config: StoreConfig) -> Any:
    """The catalog replica of the node this process runs on (created if absent), pinned
    to that node (a soft preference put it elsewhere: docs/ENVIRONMENT-NOTES.md). When
    the node is gone, so is its replica; a recommender restarted elsewhere makes one on
    its new node."""
    node = ray.get_runtime_context().get_node_id()
    return ReplicaActor.options(
        name=f"{REPLICA_NAME}-{node}",
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        **RESTART,
    ).remote(RemoteCatalog(catalog), dim, config)


@dataclass(frozen=True)
class Actors:
    """Handles the streams side holds (the only state it shares with Ray)."""

    encoder: Any
    catalog: Any
    recommender: Any
    trainer: Any | None = None  # None in zero-shot mode


# Every actor is restarted by Ray when its process or node dies (its state is rebuilt in
# __init__: the model reloads, the catalog reopens its store, the trainer resumes from
# the newest version); a call in flight fails and the caller waits and retries it
# (streams.remote), so handles stay valid and nothing is re-resolved by hand.
RESTART = {"max_restarts": -1, "max_task_retries": 0}


def _shared(actor: Any, name: str, **resources: Any) -> Any:
    """The one named, detached instance of ``actor`` in the cluster (created if absent)."""
    return actor.options(name=name, get_if_exists=True, lifetime="detached", **RESTART, **resources)


def start_actors(
    encoder: EncoderConfig,
    store: StoreConfig,
    recommend: RecommendConfig,
    adapters: AdapterStoreConfig | None = None,
    training: TrainingConfig | None = None,
) -> Actors:
    """Create (or attach to) the encoder, store and trainer actors; start a recommender.

    Blocking (it waits for the encoder to load): call it before the event loop runs.
    """
    adapters = adapters or AdapterStoreConfig()
    training = training or TrainingConfig()
    enc = _shared(
        EncoderActor,
        ENCODER_NAME,
        num_gpus=encoder.num_gpus,
        num_cpus=encoder.num_cpus,
        resources=encoder.resources,
        max_concurrency=1,
    ).remote(encoder)
    dim = int(ray.get(enc.dimension.remote()))
    cat = _shared(CatalogActor, CATALOG_NAME, num_cpus=0, resources=store.resources).remote(
        store, dim, adapters
    )
    ray.get(cat.count.remote())  # surface a bad store URL now, not on the first event
    trainer = None
    if training.mode == "online":
        trainer = _shared(
            TrainerActor,
            TRAINER_NAME,
            num_cpus=training.num_cpus,
            num_gpus=training.num_gpus,
            resources=training.resources,
            max_concurrency=4,  # add() keeps flowing while train_now() runs
        ).remote(training, RemoteCatalog(cat), dim)
        ray.get(trainer.version.remote())
    # One recommender per streamrec worker process: it serves that worker's partitions,
    # reading its node's catalog replica and embedding event text itself.
    rec = RecommenderActor.options(num_cpus=0, resources=recommend.resources, **RESTART).remote(
        recommend,
        NodeCatalog(cat, dim, store, own=recommend.replica == "own"),
        LazyEncoder(encoder),
        dim=dim,
    )
    return Actors(encoder=enc, catalog=cat, recommender=rec, trainer=trainer)
