"""What one `Recommender.recommend` call takes and gives, and how it crosses processes.

    worker ──[EventIn] + {user_id: UserState | None}──► Recommender
    worker ◄──Batch(results, new states, samples)────── Recommender

Both directions cross a Ray boundary on every micro-batch. Pickled as they are, 256
events' states, results and samples are thousands of small objects and hundreds of
small arrays; `Events`, `UserStates` and `Batch` pickle as a few columns instead (their
vectors as one matrix per length, the results' items as one flat list: `workers.wire`).
Unpickled, they are the same plain objects. Pure: no I/O, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workers.training import Sample
from workers.wire import HitLists, Vector, stacked, unstacked


@dataclass(frozen=True)
class EventIn:
    """The part of an event the recommender needs."""

    event_id: str
    user_id: str
    item_id: str
    scenario: str = "default"
    weight: float = 1.0
    text: str | None = None
    learn: bool = True  # False: served, folded, never a training sample


@dataclass(frozen=True)
class RecResult:
    event_id: str
    user_id: str
    items: list[tuple[str, float]]
    model_version: int


@dataclass
class UserState:
    """What is kept per user (the Faust table stores it through a versioned codec).

    ``history`` holds the recent item ids, oldest first, and ``weights`` each one's event
    weight (so a recompute weighs them as the events did). ``vector`` is the running user
    state of model ``version`` (None: the empty state); a state of another version is
    recomputed from the history on the user's next event.
    """

    history: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # history items not yet in the catalog
    recent_events: list[str] = field(default_factory=list)  # event ids applied, oldest first
    vector: Vector | None = None
    events: int = 0
    scenario: str = "default"
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.history):
            raise ValueError(f"{len(self.history)} history items but {len(self.weights)} weights")
        if not set(self.pending) <= set(self.history):
            raise ValueError("pending items must be in the history")

    def remember(self, item_id: str, weight: float, size: int) -> None:
        """Append ``item_id`` (moving it to the end if present), keep the last ``size``.

        New lists each time: a sample may still hold the history before the event."""
        if item_id not in self.history:  # the common case, in C: no pair per item
            if len(self.history) != len(self.weights):
                raise ValueError("history and weights differ in length")
            self.history = [*self.history, item_id][-size:]
            self.weights = [*self.weights, weight][-size:]
            return
        kept = [(i, w) for i, w in zip(self.history, self.weights, strict=True) if i != item_id]
        kept.append((item_id, weight))
        kept = kept[-size:]
        self.history = [i for i, _ in kept]
        self.weights = [w for _, w in kept]

    def applied(self, event_id: str) -> bool:
        """Whether this event already changed the state (a re-processed batch)."""
        return event_id in self.recent_events

    def mark_applied(self, event_id: str, window: int) -> None:
        self.recent_events = (
            [*self.recent_events[-(window - 1) :], event_id] if window > 1 else [event_id]
        )

    def weight_of(self, item_id: str) -> float:
        return self.weights[self.history.index(item_id)]

    def copy(self) -> UserState:
        vector = None if self.vector is None else self.vector.copy()
        return replace(
            self,
            history=list(self.history),
            weights=list(self.weights),
            pending=list(self.pending),
            recent_events=list(self.recent_events),
            vector=vector,
        )


@dataclass
class Batch:
    """The output of one `Recommender.recommend` call."""

    results: list[RecResult]
    states: dict[str, UserState]
    samples: list[Sample]  # (history before the event -> its item), for the trainer
    # Wall-clock (time.time) start and end of the call inside the recommender, so the
    # caller can split its wait into the way there, the work and the way back.
    ran: tuple[float, float] = (0.0, 0.0)

    def __reduce__(self) -> tuple[Any, ...]:
        results = (
            [r.event_id for r in self.results],
            [r.user_id for r in self.results],
            [r.model_version for r in self.results],
            HitLists.of_pairs([r.items for r in self.results]),
        )
        samples = _columns(((s.history, s.target, s.scenario, s.user_id) for s in self.samples), 4)
        return (_batch_from, (results, _state_columns(self.states), samples, self.ran))


class Events(list[EventIn]):
    """A batch of `EventIn` that pickles as columns."""

    def __reduce__(self) -> tuple[Any, ...]:
        columns = [
            (e.event_id, e.user_id, e.item_id, e.scenario, e.weight, e.text, e.learn) for e in self
        ]
        return (_events_from, (columns,))


def _events_from(columns: list[tuple[Any, ...]]) -> Events:
    return Events(EventIn(*c) for c in columns)


class UserStates(dict[str, UserState | None]):
    """{user_id: state or None} that pickles as columns, the vectors as one matrix."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_states_from, _state_columns(self))


def _state_columns(states: Mapping[str, UserState | None]) -> tuple[Any, ...]:
    rows = [
        None
        if s is None
        else (s.history, s.weights, s.pending, s.recent_events, s.events, s.scenario, s.version)
        for s in states.values()
    ]
    vectors = {u: s.vector for u, s in states.items() if s is not None and s.vector is not None}
    return (list(states), rows, list(vectors), stacked(list(vectors.values())))


def _states_from(
    uids: list[str],
    rows: list[tuple[Any, ...] | None],
    with_vector: list[str],
    groups: list[tuple[list[int], Vector]],
) -> UserStates:
    vectors = dict(zip(with_vector, unstacked(groups, len(with_vector)), strict=True))
    out = UserStates()
    for uid, row in zip(uids, rows, strict=True):
        if row is None:
            out[uid] = None
            continue
        history, weights, pending, recent, events, scenario, version = row
        out[uid] = UserState(
            history=history,
            weights=weights,
            pending=pending,
            recent_events=recent,
            vector=vectors.get(uid),
            events=events,
            scenario=scenario,
            version=version,
        )
    return out


def _batch_from(
    results: tuple[list[str], list[str], list[int], HitLists],
    states: tuple[Any, ...],
    samples: tuple[list[tuple[str, ...]], list[str], list[str], list[str | None]],
    ran: tuple[float, float],
) -> Batch:
    event_ids, user_ids, versions, items = results
    return Batch(
        results=[
            RecResult(e, u, items.pairs(n), v)
            for n, (e, u, v) in enumerate(zip(event_ids, user_ids, versions, strict=True))
        ],
        states={u: s for u, s in _states_from(*states).items() if s is not None},
        samples=[Sample(*columns) for columns in zip(*samples, strict=True)],
        ran=ran,
    )


def _columns(rows: Iterable[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
