"""Prequential (test-then-train) HR@K and NDCG@K on the live event stream.

In: :class:`Observation` s in stream order, one per stream event, each an event (user,
item) judged against the list served to that user before it (after their previous
event), with the model version that produced the list; :func:`observations_from_stream`
builds them from events and the lists served after each event. Out: a
:class:`PrequentialResult` with the overall values, running values after every scored
observation, per-window values (every ``window`` scored observations) and per-version
values. Per observation, with r the 0-based position of the item in
``recommended[:k]``: HR = 1 if present, NDCG = 1/log2(r + 2) (one relevant item, as in
``metrics.py``). Observations without a list (``recommended=None``, e.g. a user's first
event) are counted in ``skipped`` only.

Stream time is the number of events processed: the observation at index n of the input
(0-based) is the event at *stream position* n, so pass one observation per stream event,
skipped ones included. Each window records the stream positions and timestamps it spans
and which model versions served its lists; ``version_starts`` says at which stream
position each version's first judged list was served (``Observation.served_at``), so
the effect of each version is visible over stream time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tooling.evaluation.metrics import ndcg_of, rank_of


@dataclass(frozen=True)
class Observation:
    """One stream event judged against the list recommended to that user after their
    previous event (``recommended`` None: no list yet, e.g. a user's first event)."""

    user: str
    item: str
    recommended: Sequence[str] | None
    version: str = ""
    ts: float | None = None  # the event's stream timestamp (epoch seconds)
    served_at: int | None = None  # stream position of the event after which the list was served


@dataclass(frozen=True)
class PrequentialPoint:
    """HR@K and NDCG@K over ``events`` scored observations."""

    events: int
    hr: float
    ndcg: float


@dataclass(frozen=True)
class Window:
    """Scored observations ``start`` (inclusive) to ``end`` (exclusive), counted among
    scored ones; in stream time they span positions ``events_from`` to ``events_to``
    (exclusive: ``events_to`` events had been processed at the window's end) and
    timestamps ``ts_from`` to ``ts_to`` (None when the observations carry no ``ts``).
    ``versions``: (model version, scored observations it served), versions in the order
    of ``PrequentialResult.version_starts``."""

    start: int
    end: int
    point: PrequentialPoint
    events_from: int = 0
    events_to: int = 0
    ts_from: float | None = None
    ts_to: float | None = None
    versions: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PrequentialResult:
    """Overall, running (after each scored observation), per-window and per-version HR/NDCG;
    ``skipped`` observations had no recommendation and are not scored. ``positions``:
    the stream position of each scored observation (the x of ``running_*``).
    ``version_starts``: version -> stream position at which its first judged list was
    served (``served_at``, else the judged event's position), in order of that position."""

    k: int
    overall: PrequentialPoint
    running_hr: tuple[float, ...]
    running_ndcg: tuple[float, ...]
    windows: tuple[Window, ...]
    by_version: Mapping[str, PrequentialPoint] = field(default_factory=dict)
    skipped: int = 0
    positions: tuple[int, ...] = ()
    version_starts: Mapping[str, int] = field(default_factory=dict)


def span(result: PrequentialResult, lo: int, hi: int) -> PrequentialPoint:
    """HR/NDCG of scored observations ``lo`` (inclusive) to ``hi`` (exclusive), counted
    among scored ones, from the running means."""
    if hi <= lo:
        return PrequentialPoint(0, 0.0, 0.0)

    def mean(running: tuple[float, ...]) -> float:
        return (running[hi - 1] * hi - (running[lo - 1] * lo if lo else 0.0)) / (hi - lo)

    return PrequentialPoint(hi - lo, mean(result.running_hr), mean(result.running_ndcg))


def equal_windows(
    result: PrequentialResult, n: int = 10
) -> list[tuple[int, int, PrequentialPoint]]:
    """``n`` equal shares of the scored observations: (first stream position, last stream
    position + 1, their HR/NDCG) (shares too small to hold one are left out)."""
    size = len(result.running_hr)
    bounds = [round(size * w / n) for w in range(n + 1)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        start = result.positions[lo] if result.positions else lo
        end = result.positions[hi - 1] + 1 if result.positions else hi
        out.append((start, end, span(result, lo, hi)))
    return out


def prequential(
    observations: Iterable[Observation], k: int = 10, window: int = 1000
) -> PrequentialResult:
    """Score each observation's item against its ``recommended[:k]`` (hit, 1/log2(r+2)).

    ``observations``: one per stream event, in stream order (index = stream position).
    Windows hold ``window`` consecutive scored observations (the last may be shorter);
    ``by_version`` groups by ``Observation.version`` in order of first appearance.
    """
    if k < 1 or window < 1:
        raise ValueError("k and window must be >= 1")
    scored: list[_Scored] = []
    skipped = 0
    for position, obs in enumerate(observations):
        if obs.recommended is None:
            skipped += 1
            continue
        rank = rank_of(obs.recommended, obs.item, k)
        hit, gain = (0.0 if rank is None else 1.0), ndcg_of(rank)
        served = position if obs.served_at is None else obs.served_at
        scored.append(_Scored(hit, gain, position, obs.ts, obs.version, served))
    running_hr: list[float] = []
    running_ndcg: list[float] = []
    hit_sum = ndcg_sum = 0.0
    for count, s in enumerate(scored, 1):
        hit_sum += s.hit
        ndcg_sum += s.gain
        running_hr.append(hit_sum / count)
        running_ndcg.append(ndcg_sum / count)
    versions: dict[str, list[_Scored]] = {}
    for s in scored:
        versions.setdefault(s.version, []).append(s)
    starts = {v: min(s.served_at for s in group) for v, group in versions.items()}
    starts = dict(sorted(starts.items(), key=lambda kv: kv[1]))  # stable on ties
    return PrequentialResult(
        k=k,
        overall=_point(scored),
        running_hr=tuple(running_hr),
        running_ndcg=tuple(running_ndcg),
        windows=tuple(
            _window(scored, start, min(start + window, len(scored)), list(starts))
            for start in range(0, len(scored), window)
        ),
        by_version={v: _point(group) for v, group in versions.items()},
        skipped=skipped,
        positions=tuple(s.position for s in scored),
        version_starts=starts,
    )


@dataclass(frozen=True)
class _Scored:
    """One scored observation: its HR and NDCG gains and where it sits in the stream."""

    hit: float
    gain: float
    position: int
    ts: float | None
    version: str
    served_at: int


def _point(scored: Sequence[_Scored]) -> PrequentialPoint:
    if not scored:
        return PrequentialPoint(0, 0.0, 0.0)
    n = len(scored)
    return PrequentialPoint(n, sum(s.hit for s in scored) / n, sum(s.gain for s in scored) / n)


def _window(scored: Sequence[_Scored], start: int, end: int, order: Sequence[str]) -> Window:
    """Scored observations ``start:end``; their versions listed in ``order``."""
    part = scored[start:end]
    counts = dict.fromkeys(order, 0)
    for s in part:
        counts[s.version] += 1
    stamps = [s.ts for s in part if s.ts is not None]
    return Window(
        start=start,
        end=end,
        point=_point(part),
        events_from=part[0].position,
        events_to=part[-1].position + 1,
        ts_from=min(stamps) if stamps else None,
        ts_to=max(stamps) if stamps else None,
        versions=tuple((v, n) for v, n in counts.items() if n),
    )


def observations_from_stream(
    events: Iterable[Mapping[str, object]],
    recommended_after: Mapping[str, Sequence[str]],
    versions: Mapping[str, str] | None = None,
) -> list[Observation]:
    """Pair each event (stream order; ``event_id``, ``user_id``, ``item_id``, optional
    ``ts``) with the latest list served to the same user before it (after one of their
    earlier events): one observation per event, so index = stream position.

    ``recommended_after``: event_id -> the list served after processing that event;
    ``versions``: event_id -> model version that produced it. An event whose user has
    no earlier event with a list gets ``recommended=None``. ``served_at`` is the stream
    position of the event after which the judged list was served. Inputs are not
    modified.
    """
    last: dict[str, tuple[tuple[str, ...], str, int]] = {}
    out: list[Observation] = []
    for position, event in enumerate(events):
        user, event_id = str(event["user_id"]), str(event["event_id"])
        previous = last.get(user)
        out.append(
            Observation(
                user,
                str(event["item_id"]),
                None if previous is None else previous[0],
                "" if previous is None else previous[1],
                ts=_timestamp(event.get("ts")),
                served_at=None if previous is None else previous[2],
            )
        )
        if event_id in recommended_after:
            version = (versions or {}).get(event_id, "")
            last[user] = (tuple(recommended_after[event_id]), version, position)
    return out


def _timestamp(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float | str):
        return float(value)
    raise ValueError(f"event ts must be a number, not {value!r}")
