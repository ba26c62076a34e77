"""The one place where the worker classes become Ray actors.

`start_actors` connects the encoder, the store and the recommenders:

    catalog batch ──► EncoderActor.encode ──► StoreActor.index
    event batch   ──► RecommenderActor.recommend ──► (StoreActor.vectors/search,
                                                      EncoderActor.encode for event text)

The encoder and the store are named, detached actors (``get_if_exists``), so every
streamrec worker process attached to the same Ray cluster shares one catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray

from workers.config import EncoderConfig, RecommendConfig, StoreConfig
from workers.encoder import TextEncoder
from workers.services import RecommenderService, StoreService
from workers.store import Hit, SearchRequest
from workers.user_math import Vector

ENCODER_NAME = "streamrec-encoder"
STORE_NAME = "streamrec-store"


class RemoteStore:
    """`VectorLookup` over a store actor handle (used inside another actor: may block)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def vectors(self, item_ids: Sequence[str], using: str = "rec") -> dict[str, Vector]:
        result: dict[str, Vector] = ray.get(self.handle.vectors.remote(list(item_ids), using))
        return result

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        result: list[list[Hit]] = ray.get(self.handle.search.remote(list(requests)))
        return result


class RemoteEncoder:
    """`TextEmbedder` over an encoder actor handle."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def encode(self, texts: Sequence[str]) -> Vector:
        result: Vector = ray.get(self.handle.encode.remote(list(texts)))
        return result


class _RecommenderActor(RecommenderService):
    def __init__(self, config: RecommendConfig, store: Any, encoder: Any) -> None:
        super().__init__(config, RemoteStore(store), RemoteEncoder(encoder))


# Typed as Any: handles are dynamic proxies (`handle.method.remote(...)`).
EncoderActor: Any = ray.remote(TextEncoder)
StoreActor: Any = ray.remote(StoreService)
RecommenderActor: Any = ray.remote(_RecommenderActor)


@dataclass(frozen=True)
class Actors:
    """Handles the streams side holds (the only state it shares with Ray)."""

    encoder: Any
    store: Any
    recommender: Any
    dim: int


def start_actors(
    encoder: EncoderConfig,
    store: StoreConfig,
    recommend: RecommendConfig,
    *,
    namespace_prefix: str = "",
) -> Actors:
    """Create (or attach to) the encoder and store actors, and start recommenders.

    Blocking (it waits for the encoder to load): call it before the event loop runs.
    """
    enc = EncoderActor.options(
        name=namespace_prefix + ENCODER_NAME,
        get_if_exists=True,
        lifetime="detached",
        num_gpus=encoder.num_gpus,
        num_cpus=encoder.num_cpus,
        max_concurrency=1,
    ).remote(encoder)
    dim = int(ray.get(enc.dimension.remote()))
    st = StoreActor.options(
        name=namespace_prefix + STORE_NAME,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
    ).remote(store, dim)
    ray.get(st.count.remote())  # surface a bad store URL now, not on the first event
    # One recommender per streamrec worker process: it serves that worker's partitions.
    rec = RecommenderActor.options(num_cpus=0).remote(recommend, st, enc)
    return Actors(encoder=enc, store=st, recommender=rec, dim=dim)
