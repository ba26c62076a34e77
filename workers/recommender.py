"""Per-event user-state update and top-K retrieval, batched.

Input: a micro-batch of events (in stream order) and the current state of every user
in it. Output: one `RecResult` per event and the users' new states. The state itself is
owned by the caller (a Faust table, i.e. changelog-backed); this class only computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from workers.config import RecommendConfig
from workers.store.base import Hit, SearchRequest
from workers.user_math import (
    Vector,
    bounded_history,
    decode_vector,
    encode_vector,
    fold,
    is_usable,
    normalized,
)


class VectorLookup(Protocol):
    def vectors(self, item_ids: Sequence[str], using: str = "rec") -> dict[str, Vector]: ...

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]: ...


class TextEmbedder(Protocol):
    def encode(self, texts: Sequence[str]) -> Vector: ...


@dataclass(frozen=True)
class EventIn:
    """The part of an event the recommender needs."""

    event_id: str
    user_id: str
    item_id: str
    scenario: str = "default"
    weight: float = 1.0
    text: str | None = None


@dataclass(frozen=True)
class RecResult:
    event_id: str
    user_id: str
    items: list[tuple[str, float]]
    model_version: int


@dataclass
class UserState:
    """What is kept per user (JSON-friendly through `to_dict`/`from_dict`)."""

    history: list[str] = field(default_factory=list)  # recent item ids, oldest first
    pending: list[str] = field(default_factory=list)  # history items not yet in the catalog
    vector: Vector | None = None  # unnormalised running embedding
    events: int = 0
    scenario: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": list(self.history),
            "pending": list(self.pending),
            "vector": encode_vector(self.vector),
            "events": self.events,
            "scenario": self.scenario,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> UserState:
        if not data:
            return cls()
        return cls(
            history=list(data.get("history", [])),
            pending=list(data.get("pending", [])),
            vector=decode_vector(data.get("vector")),
            events=int(data.get("events", 0)),
            scenario=str(data.get("scenario", "default")),
        )


class Recommender:
    """Incremental user embeddings + nearest-neighbour retrieval over the catalog."""

    def __init__(self, config: RecommendConfig, store: VectorLookup, encoder: TextEmbedder) -> None:
        self.config = config
        self.store = store
        self.encoder = encoder
        self.model_version = 0
        # Per-scenario decayed sum of recently interacted item vectors: the query for a
        # user with nothing usable yet ("what is being watched now"). Soft state.
        self.trend: dict[str, Vector] = {}

    def recommend(
        self, events: Sequence[EventIn], states: Mapping[str, Mapping[str, Any] | None]
    ) -> tuple[list[RecResult], dict[str, dict[str, Any]]]:
        """[event] + {user_id: state} -> ([result per event], {user_id: new state})"""
        users = {uid: UserState.from_dict(states.get(uid)) for uid in {e.user_id for e in events}}
        wanted = {e.item_id for e in events}
        for uid in users:
            wanted.update(users[uid].pending)
        item_vectors = self.store.vectors(sorted(wanted)) if wanted else {}
        texts = [e.text for e in events if e.text and e.text.strip()]
        text_vectors = iter(self.encoder.encode(texts)) if texts else iter(())

        queries: list[Vector | None] = []
        excluded: list[tuple[str, ...]] = []  # the user's history as of each event
        for event in events:
            state = users[event.user_id]
            text_vector = next(text_vectors) if event.text and event.text.strip() else None
            self._apply(state, event, item_vectors, text_vector)
            queries.append(self._query(state, event.scenario))
            excluded.append(tuple(state.history))
            item = item_vectors.get(event.item_id)
            if item is not None:
                self._update_trend(event.scenario, item)

        requests = [
            SearchRequest(
                vector=q,
                k=self.config.top_k,
                scenario=e.scenario,
                exclude=seen,
            )
            for e, q, seen in zip(events, queries, excluded, strict=True)
            if q is not None
        ]
        hits = iter(self.store.search(requests)) if requests else iter(())
        results = []
        for event, query in zip(events, queries, strict=True):
            found = next(hits) if query is not None else []
            results.append(
                RecResult(
                    event_id=event.event_id,
                    user_id=event.user_id,
                    items=[(h.item_id, h.score) for h in found],
                    model_version=self.model_version,
                )
            )
        return results, {uid: s.to_dict() for uid, s in users.items()}

    def _apply(
        self,
        state: UserState,
        event: EventIn,
        item_vectors: Mapping[str, Vector],
        text_vector: Vector | None,
    ) -> None:
        """Fold one event into the state in O(d) (plus late-arriving catalog items)."""
        cfg = self.config
        still_pending = []
        for pid in state.pending:
            vec = item_vectors.get(pid)
            if vec is None:
                still_pending.append(pid)
            else:  # its catalog record arrived since: it counts now
                state.vector = fold(state.vector, vec, 1.0, cfg.recency)
        item = item_vectors.get(event.item_id)
        if item is None:
            if event.item_id not in still_pending:
                still_pending.append(event.item_id)
        else:
            state.vector = fold(state.vector, item, event.weight, cfg.recency)
        if text_vector is not None and cfg.text_weight > 0:
            state.vector = fold(state.vector, text_vector, cfg.text_weight * event.weight, 1.0)
        state.history = bounded_history(state.history, event.item_id, cfg.history_size)
        kept = set(state.history)
        state.pending = [p for p in still_pending if p in kept]
        state.events += 1
        state.scenario = event.scenario

    def _query(self, state: UserState, scenario: str) -> Vector | None:
        if is_usable(state.vector):
            assert state.vector is not None
            return normalized(state.vector)
        trend = self.trend.get(scenario)
        return normalized(trend) if trend is not None and is_usable(trend) else None

    def _update_trend(self, scenario: str, item: Vector) -> None:
        self.trend[scenario] = fold(self.trend.get(scenario), item, 1.0, self.config.trend_recency)
