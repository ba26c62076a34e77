"""Per-event user-state update and top-K retrieval, batched.

Input: a micro-batch of events (in stream order) and the current state of every user
in it. Output: one `RecResult` per event, the users' new states, and one training
`Sample` per event with a history. The state itself is owned by the caller (a Faust
table, i.e. changelog-backed); this class only computes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from workers.adapters.io import AdapterFiles
from workers.config import RecommendConfig
from workers.model import (
    ServingModel,
    Vector,
    decayed_sum,
    fold_sequences,
    is_usable,
    model_of,
    prefix_states,
    unit,
    usable_rows,
)
from workers.recommend_io import Batch, EventIn, RecResult, UserState
from workers.store.base import Hit, SearchRequest
from workers.training import Sample
from workers.wire import HitLists


class CatalogReader(Protocol):
    """The catalog as a server reads it: every answer says which model version it is at,
    and it hands out the files of a published version."""

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, Mapping[str, Vector]]: ...

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, Sequence[list[Hit]]]: ...

    def adapter(self, version: int) -> AdapterFiles | None: ...


class TextEmbedder(Protocol):
    def encode(self, texts: Sequence[str]) -> Vector: ...


class VersionMoved(RuntimeError):
    """The catalog moved to another model version during a batch, more often than retried."""


class Recommender:
    """Incremental user embeddings + nearest-neighbour retrieval over the catalog.

    Follows the catalog's model version: when the catalog answers at a version this
    server does not hold, it takes that version's files from the catalog (no shared
    directory) and recomputes each user's state from their stored history on the user's
    next event. Every version, the frozen language model (0) included, is served
    through one `ServingModel` path.
    """

    attempts = 3

    def __init__(
        self,
        config: RecommendConfig,
        catalog: CatalogReader,
        encoder: TextEmbedder,
        *,
        dim: int,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.encoder = encoder
        self.dim = dim
        self.model: ServingModel = model_of(0, None, dim=dim, recency=config.recency)
        # Per-scenario decayed sum of recently interacted item vectors: the query for a
        # user with nothing usable yet ("what is being watched now"). Soft state, in
        # order of last activity, at most `config.trend_scenarios` of them.
        self.trend: dict[str, Vector] = {}

    def model_version(self) -> int:
        """The version this server is at."""
        return self.model.version

    def catalog_version(self) -> int:
        """The version of the catalog copy this server reads; raises when it cannot be
        read (the worker's health check of its serving path)."""
        version, _ = self.catalog.lookup([])
        return version

    def recommend(self, events: Sequence[EventIn], states: Mapping[str, UserState | None]) -> Batch:
        """[event] + {user_id: state or None (new user)} -> one result per event, the
        users' new states, and training samples.

        An event whose id the user's state already holds (a batch re-processed after a
        crash or an outage) is served again but changes nothing and yields no sample.

        Pure with respect to ``states``: the caller stores the returned ones.
        """
        started = time.time()
        for _ in range(self.attempts):
            batch = self._attempt(events, states)
            if batch is not None:
                batch.ran = (started, time.time())
                return batch
        raise VersionMoved(f"the catalog changed model version {self.attempts} times in a batch")

    def _follow(self, version: int) -> None:
        if version != self.model.version:
            files = self.catalog.adapter(version) if version else None
            self.model = model_of(version, files, dim=self.dim, recency=self.config.recency)
            self.trend.clear()  # trend vectors live in the old version's space

    def _attempt(
        self, events: Sequence[EventIn], states: Mapping[str, UserState | None]
    ) -> Batch | None:
        users: dict[str, UserState] = {}
        for uid in {e.user_id for e in events}:
            given = states.get(uid)
            users[uid] = UserState() if given is None else given.copy()
        wanted = {e.item_id for e in events}
        for state in users.values():
            wanted.update(state.pending)
            if state.version != self.model.version:  # stale unless the catalog moved too:
                wanted.update(state.history)  # its history comes in the same call
        version, item_vectors = self.catalog.lookup(sorted(wanted))
        self._follow(version)
        stale = [s for s in users.values() if s.version != version and s.history]
        if stale:
            ids = sorted({i for s in stale for i in s.history} - wanted)
            if ids:  # the catalog moved during this call: the states at the old one too
                seen, more = self.catalog.lookup(ids)
                if seen != version:
                    return None
                item_vectors = {**item_vectors, **more}
            self._recompute(stale, item_vectors)
        for state in users.values():
            state.version = version
        with_text = [n for n, e in enumerate(events) if e.text and e.text.strip()]
        text_vectors: dict[int, Vector] = {}
        if with_text:
            encoded = self._text_vectors([events[n] for n in with_text])
            text_vectors = dict(zip(with_text, encoded, strict=True))

        # Events in waves: wave k holds every user's k-th event of the batch; the
        # bookkeeping goes a wave at a time, each user's events in their order. What an
        # event folds into its user's state is queued on the user's sequence, and all
        # users' sequences are then folded at once (`prefix_states`): each event's query
        # is its user's state right after it, read out for the whole batch at once.
        sequences: dict[str, list[tuple[Vector, float]]] = {uid: [] for uid in users}
        ends = [0] * len(events)  # how much of its user's sequence is folded at each event
        wave_of = [0] * len(events)
        excluded: list[tuple[str, ...]] = [()] * len(events)  # the history as of each event
        samples: list[Sample] = []
        trending: dict[str, list[tuple[int, Vector]]] = {}  # scenario -> (wave, item)
        for k, wave in enumerate(waves(events)):
            for n in wave:
                event, state = events[n], users[events[n].user_id]
                sequence = sequences[event.user_id]
                wave_of[n] = k
                if not state.applied(event.event_id):  # seen before: served, applied once
                    if state.history and event.learn:
                        history = tuple(state.history[-self.config.sample_history :])
                        samples.append(
                            Sample(history, event.item_id, event.scenario, event.user_id)
                        )
                    sequence += self._apply(state, event, item_vectors, text_vectors.get(n))
                    item = item_vectors.get(event.item_id)
                    if item is not None:
                        trending.setdefault(event.scenario, []).append((k, item))
                ends[n], excluded[n] = len(sequence), tuple(state.history)
        uids = list(sequences)
        starts = [users[uid].vector for uid in uids]
        scanned = prefix_states(self.model, [sequences[uid] for uid in uids], starts)
        folded = dict(zip(uids, scanned, strict=True))
        at: list[Vector | None] = []  # the user's state after each event
        for n, event in enumerate(events):
            after, start = folded[event.user_id], users[event.user_id].vector
            at.append(start if after is None or not ends[n] else after[ends[n] - 1])
        for uid, after in folded.items():
            if after is not None:
                users[uid].vector = after[-1].copy()  # its own array, not a view of the scan
        queries = self._queries(at, events, wave_of, trending)

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
        found = HitLists.of([])
        if requests:
            searched_at, answer = self.catalog.search_at(requests)
            if searched_at != version:
                return None
            found = HitLists.of(answer)
        answered = iter(range(len(found)))
        results = []
        for event, query in zip(events, queries, strict=True):
            items = found.pairs(next(answered)) if query is not None else []
            results.append(RecResult(event.event_id, event.user_id, items, version))
        self._update_trends(trending)
        return Batch(results, users, samples)

    def _text_vectors(self, events: Sequence[EventIn]) -> Vector:
        """Events' texts -> vectors in this version's space (text-only projection)."""
        base = self.encoder.encode([e.text or "" for e in events])
        ids = [f"\x00text:{n}" for n in range(len(events))]  # never a catalog id
        return self.model.item_vectors(ids, base, [e.scenario for e in events])

    def _recompute(self, states: list[UserState], item_vectors: Mapping[str, Vector]) -> None:
        """Rebuild states of another version from their stored histories (oldest first),
        all users at once (one model step per history position, not per item)."""
        sequences = [
            [
                (item_vectors[i], w)
                for i, w in zip(s.history, s.weights, strict=True)
                if i in item_vectors
            ]
            for s in states
        ]
        for state, vector in zip(states, fold_sequences(self.model, sequences), strict=True):
            state.vector = vector

    def _apply(
        self,
        state: UserState,
        event: EventIn,
        item_vectors: Mapping[str, Vector],
        text_vector: Vector | None,
    ) -> list[tuple[Vector, float]]:
        """One event's bookkeeping on the state (history, pending items, counts, its id);
        returns what to fold into the state's vector, in order, O(d) each: catalog items
        of its history that arrived late, its item, its text."""
        cfg = self.config
        folds: list[tuple[Vector, float]] = []
        still_pending = []
        for pid in state.pending:
            vec = item_vectors.get(pid)
            if vec is None:
                still_pending.append(pid)
            else:  # its catalog record arrived since: it counts now, with its event's weight
                folds.append((vec, state.weight_of(pid)))
        item = item_vectors.get(event.item_id)
        if item is None:
            if event.item_id not in still_pending:
                still_pending.append(event.item_id)
        else:
            folds.append((item, event.weight))
        if text_vector is not None and cfg.text_weight > 0:
            folds.append((text_vector, cfg.text_weight * event.weight))
        state.remember(event.item_id, event.weight, cfg.history_size)
        if still_pending:  # those still in the history (a set of it only then: O(history))
            kept = set(state.history)
            state.pending = [p for p in still_pending if p in kept]
        else:
            state.pending = []
        state.events += 1
        state.scenario = event.scenario
        state.mark_applied(event.event_id, cfg.dedup_window)
        return folds

    def _queries(
        self,
        vectors: Sequence[Vector | None],
        events: Sequence[EventIn],
        wave_of: Sequence[int],
        trending: Mapping[str, Sequence[tuple[int, Vector]]],
    ) -> list[Vector | None]:
        """Each event's query: its user's state read out (one batched readout); for a
        user with nothing usable, the scenario's trend as of the event's wave (the
        trend before the batch with the items of the earlier waves folded in); None
        when neither is usable."""
        out: list[Vector | None] = [None] * len(vectors)
        present = [n for n, v in enumerate(vectors) if v is not None]
        if present:
            states = np.stack([vectors[n] for n in present])  # type: ignore[misc]
            kept = usable_rows(states)
            usable = [n for n, ok in zip(present, kept.tolist(), strict=True) if ok]
            if usable:
                queries = self.model.readout_many(states[kept])
                for n, query, ok in zip(usable, queries, usable_rows(queries), strict=True):
                    out[n] = query if ok else None
        for n, query in enumerate(out):
            if query is None:
                scenario, wave = events[n].scenario, wave_of[n]
                earlier = [item for k, item in trending.get(scenario, ()) if k < wave]
                trend = self._trend_with(scenario, earlier)
                out[n] = unit(trend) if trend is not None and is_usable(trend) else None
        return out

    def _trend_with(self, scenario: str, items: Sequence[Vector]) -> Vector | None:
        """The scenario's trend with ``items`` (oldest first) folded in."""
        previous = self.trend.get(scenario)
        if not items:
            return previous
        ones = np.ones(len(items))
        return decayed_sum(previous, np.stack(items), ones, self.config.trend_recency)

    def _update_trends(self, trending: Mapping[str, Sequence[tuple[int, Vector]]]) -> None:
        """Fold a served batch's catalog items into their scenarios' trends, in order
        (one `decayed_sum` per scenario); the scenarios of the batch become the most
        recent, the least recently active beyond `trend_scenarios` are dropped."""
        for scenario, items in trending.items():
            updated = self._trend_with(scenario, [item for _, item in items])
            self.trend.pop(scenario, None)  # re-inserted last: the most recent
            if updated is not None:
                self.trend[scenario] = updated
        while len(self.trend) > self.config.trend_scenarios:
            del self.trend[next(iter(self.trend))]


def waves(events: Sequence[EventIn]) -> list[list[int]]:
    """Event positions in waves: wave k holds each user's k-th event (in batch order)."""
    seen: dict[str, int] = {}
    out: list[list[int]] = []
    for n, event in enumerate(events):
        k = seen.get(event.user_id, 0)
        seen[event.user_id] = k + 1
        if k == len(out):
            out.append([])
        out[k].append(n)
    return out
