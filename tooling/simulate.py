"""Offline replay of an event stream through the live pipeline's serving + training loop.

    events (stream order) ──► per event: fold the item into the user's state, serve the
    user's top-K (catalog rec vectors, whole history excluded) ──► Sample(history, item)
    ──► trainer; when due(): train a round ──► re-project the catalog (hot swap), users
    recomputed from their history on their next event.

Exactly the semantics of the live pipeline with a trainer that keeps up (the round
runs synchronously between two events; the simulated clock advances by
1 / ``events_per_second`` per event). `leave_one_out_lists` then ranks every user's
valid / test target with the final adapter (RecBole's leave-one-out protocol).
Pure torch + numpy; no Kafka, Ray or vector store.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from tooling.evaluation import Observation, PrequentialResult, Split, prequential
from tooling.evaluation.baselines import top_k
from workers.adapters import RecAdapter
from workers.training.buffer import Sample
from workers.training.config import TrainingConfig
from workers.training.trainer import OnlineTrainer, RoundReport

Vector = npt.NDArray[np.float32]
EARLY = 5  # a user's first events: the cold-user slice of the stream


@dataclass
class SimulationResult:
    """The final adapter, every round's report, and the served lists' prequential HR/NDCG."""

    adapter: RecAdapter
    rounds: list[RoundReport] = field(default_factory=list)
    reproject_seconds: float = 0.0
    serve_seconds: float = 0.0
    online: PrequentialResult | None = None
    early: PrequentialResult | None = None  # users' events 2 .. EARLY only (new users)

    @property
    def train_seconds(self) -> float:
        """Seconds spent in `OnlineTrainer.train_round` over the whole stream."""
        return sum(r.seconds for r in self.rounds)


class Catalog:
    """Every item's base vector and scenario, and the current adapter's rec vectors."""

    def __init__(self, base: Mapping[str, Vector], scenarios: Mapping[str, str]) -> None:
        self.ids = list(base)
        self.column = {item: n for n, item in enumerate(self.ids)}
        self.base = torch.from_numpy(np.stack([np.asarray(base[i], np.float32) for i in self.ids]))
        self.scenarios: list[str | None] = [scenarios.get(i) for i in self.ids]
        self.rec = torch.zeros(0)

    def reproject(self, adapter: RecAdapter) -> None:
        self.rec = adapter.item_vectors(self.ids, self.base, self.scenarios)


def simulate(
    events: Sequence[Mapping[str, Any]],
    base: Mapping[str, Vector],
    scenarios: Mapping[str, str],
    config: TrainingConfig,
    adapter: RecAdapter,
    *,
    serve: bool = True,
    k: int = 10,
    events_per_second: float = 500.0,
    whole_catalog: bool = False,
) -> SimulationResult:
    """Replay ``events`` (dicts with user_id, item_id[, scenario]) in order, training
    ``adapter`` in place; every event's item must have a base vector in ``base``.
    ``whole_catalog``: the trainer knows every item's base vector from the start (its
    negatives and the gate's ranking cover the catalog serving ranks over), not only the
    items the stream has referenced so far."""
    trainer = OnlineTrainer(config, adapter)
    if whole_catalog:
        trainer.add_base_vectors(base, {i: scenarios[i] for i in base if i in scenarios})
    catalog = Catalog(base, scenarios)
    result = SimulationResult(adapter)
    catalog.reproject(adapter)
    adapter = trainer.live  # what serves: the candidate itself, or the gate's live copy
    histories: dict[str, list[str]] = {}
    states: dict[str, tuple[int, torch.Tensor]] = {}  # user -> (version, state)
    served: dict[str, list[str]] = {}
    seen: dict[str, npt.NDArray[np.bool_]] = {}  # user -> catalog columns consumed
    waiting: dict[str, torch.Tensor] = {}  # user -> user vector whose list is not ranked yet
    observations: list[Observation] = []
    early: list[Observation] = []
    cut = config.max_history

    def rank_waiting() -> None:
        """Rank the waiting users' lists in one matrix product (the lists they would have
        been served after their latest event: same adapter, same exclusions)."""
        if waiting:
            started = time.perf_counter()
            users = list(waiting)
            scores = (torch.stack([waiting[u] for u in users]) @ catalog.rec.T).numpy()
            for row, user in enumerate(users):
                served[user] = top_k(scores[row], catalog.ids, k, seen[user])
            waiting.clear()
            result.serve_seconds += time.perf_counter() - started

    for n, event in enumerate(events):
        user, item = str(event["user_id"]), str(event["item_id"])
        history = histories.setdefault(user, [])
        if history:
            trainer.add([Sample(tuple(history[-cut:]), item, str(event.get("scenario", "")))])
        if serve:
            if user in waiting:
                rank_waiting()
            started = time.perf_counter()
            observations.append(Observation(user, item, served.get(user)))
            if len(history) < EARLY:
                early.append(observations[-1])
            excluded = seen.setdefault(user, np.zeros(len(catalog.ids), dtype=np.bool_))
            excluded[catalog.column[item]] = True
            state = _state(adapter, catalog, states.get(user), history)
            state = adapter.step_items(state, catalog.rec[catalog.column[item]].unsqueeze(0))
            states[user] = (adapter.version, state)
            waiting[user] = adapter.readout(state)[0]
            result.serve_seconds += time.perf_counter() - started
        history.append(item)
        now = n / events_per_second
        if trainer.due(now):
            rank_waiting()  # lists of the version that served them
            _fetch_missing(trainer, base, scenarios)
            report = trainer.train_round(now)
            result.rounds.append(report)
            if report.accepted:
                adapter = trainer.live
                started = time.perf_counter()
                catalog.reproject(adapter)
                result.reproject_seconds += time.perf_counter() - started
    if serve:
        rank_waiting()
        result.online = prequential(observations, k=k)
        result.early = prequential(early, k=k)
    result.adapter = trainer.live
    return result


def _state(
    adapter: RecAdapter,
    catalog: Catalog,
    kept: tuple[int, torch.Tensor] | None,
    history: Sequence[str],
) -> torch.Tensor:
    """The user's state before the event: kept if its version is current, else
    recomputed from the stored history (the hot-swap path)."""
    if kept is not None and kept[0] == adapter.version:
        return kept[1]
    state = adapter.initial_state(1)
    for item in history[-adapter.config.max_history :]:
        state = adapter.step_items(state, catalog.rec[catalog.column[item]].unsqueeze(0))
    return state


def _fetch_missing(
    trainer: OnlineTrainer, base: Mapping[str, Vector], scenarios: Mapping[str, str]
) -> None:
    missing = trainer.missing_items()
    if missing:
        found = {i: base[i] for i in missing if i in base}
        trainer.add_base_vectors(found, {i: scenarios[i] for i in found if i in scenarios})


def leave_one_out_lists(
    adapter: RecAdapter,
    split: Split,
    base: Mapping[str, Vector],
    scenarios: Mapping[str, str],
    k: int = 10,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(valid lists, test lists) over ``split.items`` with ``adapter``: the valid list is
    the user's recommendation after their last training event, the test list after
    also folding in their valid item; histories excluded as `Split.history` says."""
    catalog = Catalog({i: base[i] for i in split.items}, scenarios)
    catalog.reproject(adapter)
    sequences: dict[str, list[str]] = {}
    for event in split.train:
        sequences.setdefault(str(event["user_id"]), []).append(str(event["item_id"]))
    users = list(split.valid)
    out: list[dict[str, list[str]]] = []
    for phase in ("valid", "test"):
        rows = [sequences.get(u, []) + ([split.valid[u]] if phase == "test" else []) for u in users]
        vectors = _users(adapter, catalog, rows)
        scores = (vectors @ catalog.rec.T).numpy()
        lists: dict[str, list[str]] = {}
        for n, user in enumerate(users):
            excluded = np.zeros(len(catalog.ids), dtype=np.bool_)
            excluded[[catalog.column[i] for i in split.history(user, phase)]] = True
            lists[user] = top_k(scores[n], catalog.ids, k, excluded)
        out.append(lists)
    return out[0], out[1]


def _users(adapter: RecAdapter, catalog: Catalog, rows: Sequence[Sequence[str]]) -> torch.Tensor:
    """Histories (oldest first) -> (b, out) user vectors by the recompute path."""
    cut = adapter.config.max_history
    width = max(1, max((min(len(r), cut) for r in rows), default=1))
    index = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for n, row in enumerate(rows):
        cols = [catalog.column[i] for i in row[-cut:]]
        if cols:
            index[n, width - len(cols) :] = torch.tensor(cols)
            mask[n, width - len(cols) :] = True
    return adapter.user_from_items(catalog.rec[index], mask)
