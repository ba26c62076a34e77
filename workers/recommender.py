"""Per-event user-state update and top-K retrieval, batched.

Input: a micro-batch of events (in stream order) and the current state of every user
in it. Output: one `RecResult` per event, the users' new states, and one training
`Sample` per event with a history. The state itself is owned by the caller (a Faust
table, i.e. changelog-backed); this class only computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workers.config import RecommendConfig
from workers.serving_model import ServingModel
from workers.store.base import Hit, SearchRequest
from workers.training import Sample
from workers.user_math import (
    Vector,
    bounded_history,
    decode_vector,
    encode_vector,
    fold,
    is_usable,
    normalized,
)


class Catalog(Protocol):
    """The catalog as a server reads it: every answer says which model version it is at."""

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, dict[str, Vector]]: ...

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]: ...


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
    """What is kept per user (JSON-friendly through `to_dict`/`from_dict`).

    ``vector`` is the running user state of model ``version``: the decayed fold of rec
    vectors at version 0, the adapter aggregator's state above. A state of another
    version is recomputed from ``history`` on the user's next event.
    """

    history: list[str] = field(default_factory=list)  # recent item ids, oldest first
    pending: list[str] = field(default_factory=list)  # history items not yet in the catalog
    vector: Vector | None = None
    events: int = 0
    scenario: str = "default"
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": list(self.history),
            "pending": list(self.pending),
            "vector": encode_vector(self.vector),
            "events": self.events,
            "scenario": self.scenario,
            "version": self.version,
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
            version=int(data.get("version", 0)),
        )


class VersionMoved(RuntimeError):
    """The catalog moved to another model version during a batch, more often than retried."""


@dataclass
class Batch:
    """The output of one `Recommender.recommend` call."""

    results: list[RecResult]
    states: dict[str, dict[str, Any]]
    samples: list[Sample]  # (history before the event -> its item), for the trainer


class Recommender:
    """Incremental user embeddings + nearest-neighbour retrieval over the catalog.

    Follows the catalog's model version: when the catalog answers at a version this
    server does not hold, it loads that version (``adapters_root``) and recomputes each
    user's state from their stored history on the user's next event.
    """

    attempts = 3

    def __init__(
        self,
        config: RecommendConfig,
        catalog: Catalog,
        encoder: TextEmbedder,
        adapters_root: str | Path = ".streamrec/adapters",
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.encoder = encoder
        self.model = ServingModel(adapters_root)
        # Per-scenario decayed sum of recently interacted item vectors: the query for a
        # user with nothing usable yet ("what is being watched now"). Soft state.
        self.trend: dict[str, Vector] = {}

    @property
    def model_version(self) -> int:
        return self.model.version

    def recommend(
        self, events: Sequence[EventIn], states: Mapping[str, Mapping[str, Any] | None]
    ) -> Batch:
        """[event] + {user_id: state} -> one result per event, new states, samples.

        Pure with respect to ``states``: the caller stores the returned ones.
        """
        for _ in range(self.attempts):
            batch = self._attempt(events, states)
            if batch is not None:
                return batch
        raise VersionMoved(f"the catalog changed model version {self.attempts} times in a batch")

    def _follow(self, version: int) -> None:
        if version != self.model.version:
            self.model = self.model.load(version)
            self.trend.clear()  # trend vectors live in the old version's space

    def _attempt(
        self, events: Sequence[EventIn], states: Mapping[str, Mapping[str, Any] | None]
    ) -> Batch | None:
        users = {uid: UserState.from_dict(states.get(uid)) for uid in {e.user_id for e in events}}
        wanted = {e.item_id for e in events}
        for state in users.values():
            wanted.update(state.pending)
        version, item_vectors = self.catalog.lookup(sorted(wanted))
        self._follow(version)
        stale = [s for s in users.values() if s.version != version and s.history]
        if stale:
            ids = sorted({i for s in stale for i in s.history} - set(item_vectors))
            seen, more = self.catalog.lookup(ids)
            if seen != version:
                return None
            item_vectors = {**item_vectors, **more}
            for state in stale:
                self._recompute(state, item_vectors)
        for state in users.values():
            state.version = version
        texts = [e.text for e in events if e.text and e.text.strip()]
        text_vectors = iter(self._text_vectors(texts, events)) if texts else iter(())

        queries: list[Vector | None] = []
        excluded: list[tuple[str, ...]] = []  # the user's history as of each event
        samples: list[Sample] = []
        for event in events:
            state = users[event.user_id]
            if state.history:
                history = tuple(state.history[-self.config.sample_history :])
                samples.append(Sample(history, event.item_id, event.scenario))
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
                exact=self.config.exact_search,
            )
            for e, q, seen in zip(events, queries, excluded, strict=True)
            if q is not None
        ]
        if requests:
            searched_at, found = self.catalog.search_at(requests)
            if searched_at != version:
                return None
        hits = iter(found) if requests else iter(())
        results = []
        for event, query in zip(events, queries, strict=True):
            top = next(hits) if query is not None else []
            results.append(
                RecResult(
                    event_id=event.event_id,
                    user_id=event.user_id,
                    items=[(h.item_id, h.score) for h in top],
                    model_version=version,
                )
            )
        return Batch(results, {uid: s.to_dict() for uid, s in users.items()}, samples)

    def _text_vectors(self, texts: list[str], events: Sequence[EventIn]) -> Vector:
        """Event texts -> vectors in this version's space (text-only projection)."""
        base = self.encoder.encode(texts)
        scenarios = [e.scenario for e in events if e.text and e.text.strip()]
        ids = [f"\x00text:{n}" for n in range(len(texts))]  # never a catalog id
        return self.model.item_vectors(ids, base, scenarios)

    def _fold(self, state: UserState, item: Vector, weight: float) -> None:
        """One item into the state, O(d), in this version's way."""
        if self.model.version == 0:
            state.vector = fold(state.vector, item, weight, self.config.recency)
            return
        if state.vector is None:
            state.vector = self.model.initial_state()
        state.vector = self.model.step(state.vector, item)

    def _recompute(self, state: UserState, item_vectors: Mapping[str, Vector]) -> None:
        """Rebuild a state of another version from the stored history (oldest first)."""
        state.vector = None
        for item_id in state.history:
            vec = item_vectors.get(item_id)
            if vec is not None:
                self._fold(state, vec, 1.0)

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
                self._fold(state, vec, 1.0)
        item = item_vectors.get(event.item_id)
        if item is None:
            if event.item_id not in still_pending:
                still_pending.append(event.item_id)
        else:
            self._fold(state, item, event.weight)
        if text_vector is not None and cfg.text_weight > 0:
            if self.model.version == 0:
                state.vector = fold(state.vector, text_vector, cfg.text_weight * event.weight, 1.0)
            else:
                self._fold(state, text_vector, cfg.text_weight * event.weight)
        state.history = bounded_history(state.history, event.item_id, cfg.history_size)
        kept = set(state.history)
        state.pending = [p for p in still_pending if p in kept]
        state.events += 1
        state.scenario = event.scenario

    def _query(self, state: UserState, scenario: str) -> Vector | None:
        if is_usable(state.vector):
            assert state.vector is not None
            if self.model.version == 0:
                return normalized(state.vector)
            query = self.model.readout(state.vector)
            if is_usable(query):
                return query
        trend = self.trend.get(scenario)
        return normalized(trend) if trend is not None and is_usable(trend) else None

    def _update_trend(self, scenario: str, item: Vector) -> None:
        self.trend[scenario] = fold(self.trend.get(scenario), item, 1.0, self.config.trend_recency)
