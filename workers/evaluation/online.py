"""Prequential (test-then-train) HR@K and NDCG@K on the live event stream.

In: :class:`Observation` s in stream order, each an event (user, item) judged against
the list served to that user before it (after their previous event), with the model
version that produced the list; :func:`observations_from_stream` builds them from
events and the lists served after each event. Out: a :class:`PrequentialResult` with
the overall values, running values after every scored observation, per-window values
(every ``window`` scored observations) and per-version values. Per observation, with
r the 0-based position of the item in ``recommended[:k]``: HR = 1 if present, NDCG =
1/log2(r + 2) (one relevant item, as in ``metrics.py``). Observations without a list
(``recommended=None``, e.g. a user's first event) are counted in ``skipped`` only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from workers.evaluation.metrics import rank_of


@dataclass(frozen=True)
class Observation:
    """One stream event judged against the list recommended to that user after their
    previous event (``recommended`` None: no list yet, e.g. a user's first event)."""

    user: str
    item: str
    recommended: Sequence[str] | None
    version: str = ""


@dataclass(frozen=True)
class PrequentialPoint:
    """HR@K and NDCG@K over ``events`` scored observations."""

    events: int
    hr: float
    ndcg: float


@dataclass(frozen=True)
class Window:
    """Scored observations ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int
    point: PrequentialPoint


@dataclass(frozen=True)
class PrequentialResult:
    """Overall, running (after each scored observation), per-window and per-version HR/NDCG;
    ``skipped`` observations had no recommendation and are not scored."""

    k: int
    overall: PrequentialPoint
    running_hr: tuple[float, ...]
    running_ndcg: tuple[float, ...]
    windows: tuple[Window, ...]
    by_version: Mapping[str, PrequentialPoint] = field(default_factory=dict)
    skipped: int = 0


def prequential(
    observations: Iterable[Observation], k: int = 10, window: int = 1000
) -> PrequentialResult:
    """Score each observation's item against its ``recommended[:k]`` (hit, 1/log2(r+2)).

    Windows hold ``window`` consecutive scored observations (the last may be shorter);
    ``by_version`` groups by ``Observation.version`` in order of first appearance.
    """
    if k < 1 or window < 1:
        raise ValueError("k and window must be >= 1")
    gains: list[tuple[float, float]] = []
    versions: dict[str, list[tuple[float, float]]] = {}
    skipped = 0
    for obs in observations:
        if obs.recommended is None:
            skipped += 1
            continue
        rank = rank_of(obs.recommended, obs.item, k)
        scored = (0.0, 0.0) if rank is None else (1.0, 1.0 / math.log2(rank + 2))
        gains.append(scored)
        versions.setdefault(obs.version, []).append(scored)
    running_hr: list[float] = []
    running_ndcg: list[float] = []
    hit_sum = ndcg_sum = 0.0
    for count, (hit, gain) in enumerate(gains, 1):
        hit_sum += hit
        ndcg_sum += gain
        running_hr.append(hit_sum / count)
        running_ndcg.append(ndcg_sum / count)
    windows = tuple(
        Window(start, min(start + window, len(gains)), _point(gains[start : start + window]))
        for start in range(0, len(gains), window)
    )
    return PrequentialResult(
        k=k,
        overall=_point(gains),
        running_hr=tuple(running_hr),
        running_ndcg=tuple(running_ndcg),
        windows=windows,
        by_version={v: _point(g) for v, g in versions.items()},
        skipped=skipped,
    )


def _point(gains: Sequence[tuple[float, float]]) -> PrequentialPoint:
    if not gains:
        return PrequentialPoint(0, 0.0, 0.0)
    n = len(gains)
    return PrequentialPoint(n, sum(h for h, _ in gains) / n, sum(g for _, g in gains) / n)


def observations_from_stream(
    events: Iterable[Mapping[str, object]],
    recommended_after: Mapping[str, Sequence[str]],
    versions: Mapping[str, str] | None = None,
) -> list[Observation]:
    """Pair each event (stream order; ``event_id``, ``user_id``, ``item_id``) with the
    latest list served to the same user before it (after one of their earlier events).

    ``recommended_after``: event_id -> the list served after processing that event;
    ``versions``: event_id -> model version that produced it. An event whose user has
    no earlier event with a list gets ``recommended=None``. Inputs are not modified.
    """
    last: dict[str, tuple[Sequence[str], str]] = {}
    out: list[Observation] = []
    for event in events:
        user, event_id = str(event["user_id"]), str(event["event_id"])
        previous = last.get(user)
        out.append(
            Observation(
                user,
                str(event["item_id"]),
                None if previous is None else tuple(previous[0]),
                "" if previous is None else previous[1],
            )
        )
        if event_id in recommended_after:
            version = (versions or {}).get(event_id, "")
            last[user] = (tuple(recommended_after[event_id]), version)
    return out
