"""Prequential metrics over stream time, annotated with model versions; latency
percentiles. Values computed by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tooling.evaluation import Observation, latency_summary, observations_from_stream, prequential


def ev(n: int, user: str, item: str) -> dict[str, Any]:
    return {"event_id": f"e{n}", "user_id": user, "item_id": item, "ts": 10.0 + n}


EVENTS = [
    ev(0, "u1", "A"),  # no list yet; served [B] by version 1
    ev(1, "u2", "X"),  # no list yet; served [Y] by version 1
    ev(2, "u1", "B"),  # judged vs [B] (v1, served after event 0): hit at 0; served [C, Z] by v2
    ev(3, "u2", "Z"),  # judged vs [Y] (v1, served after event 1): miss; served [Z] by v2
    ev(4, "u1", "Z"),  # judged vs [C, Z] (v2, after event 2): hit at 1; nothing served
    ev(5, "u2", "Z"),  # judged vs [Z] (v2, after event 3): hit at 0
    ev(6, "u1", "Q"),  # judged vs [C, Z] again (latest list, v2): miss
]
SERVED = {"e0": ["B"], "e1": ["Y"], "e2": ["C", "Z"], "e3": ["Z"], "e5": ["Q"], "e6": ["R"]}
VERSIONS = {"e0": "1", "e1": "1", "e2": "2", "e3": "2", "e5": "2", "e6": "2"}
G = 1 / math.log2(3)  # NDCG of a hit at rank 1


def test_observations_carry_stream_time() -> None:
    obs = observations_from_stream(EVENTS, SERVED, VERSIONS)
    assert [(o.served_at, o.version, o.ts) for o in obs] == [
        (None, "", 10.0), (None, "", 11.0), (0, "1", 12.0), (1, "1", 13.0),
        (2, "2", 14.0), (3, "2", 15.0), (2, "2", 16.0),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="ts"):
        observations_from_stream([{**EVENTS[0], "ts": [1]}], {})


def test_windows_over_stream_time_with_versions() -> None:
    r = prequential(observations_from_stream(EVENTS, SERVED, VERSIONS), k=2, window=2)
    assert r.skipped == 2 and r.positions == (2, 3, 4, 5, 6)
    assert r.version_starts == {"1": 0, "2": 2}
    assert [(w.start, w.end, w.events_from, w.events_to) for w in r.windows] == [
        (0, 2, 2, 4), (2, 4, 4, 6), (4, 5, 6, 7),
    ]  # fmt: skip
    assert [(w.ts_from, w.ts_to) for w in r.windows] == [(12.0, 13.0), (14.0, 15.0), (16.0, 16.0)]
    assert [w.versions for w in r.windows] == [(("1", 2),), (("2", 2),), (("2", 1),)]
    assert [w.point.hr for w in r.windows] == [0.5, 1.0, 0.0]
    assert r.windows[1].point.ndcg == pytest.approx((G + 1) / 2)
    assert r.by_version["1"].hr == 0.5 and r.by_version["2"].hr == pytest.approx(2 / 3)
    assert r.by_version["2"].ndcg == pytest.approx((G + 1) / 3)


def test_version_order_follows_first_serving_not_first_judging() -> None:
    obs = [
        Observation("u", "i", ["i"], "b", served_at=5),
        Observation("u", "i", ["x"], "a", served_at=1),
        Observation("u", "i", ["x"], "c"),  # no served_at: its own position (2)
        Observation("u", "i", None),
    ]
    r = prequential(obs, k=1, window=10)
    assert list(r.version_starts.items()) == [("a", 1), ("c", 2), ("b", 5)]
    assert r.windows[0].versions == (("a", 1), ("c", 1), ("b", 1))
    assert (r.windows[0].ts_from, r.windows[0].ts_to) == (None, None)
    assert (r.windows[0].events_from, r.windows[0].events_to, r.skipped) == (0, 3, 1)


def test_latency_percentiles() -> None:
    s = latency_summary([float(x) for x in reversed(range(101))])  # 100 .. 0 ms
    assert (s.count, s.mean, s.p50, s.p95, s.p99, s.max) == (101, 50.0, 50.0, 95.0, 99.0, 100.0)
    ten = latency_summary([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    # Nearest rank, never interpolated: ceil(.5 * 10) = 5th, ceil(9.5) = ceil(9.9) = 10th.
    assert (ten.p50, ten.p95, ten.p99) == (5.0, 10.0, 10.0)
    for bad in ([], [1.0, -1.0], [1.0, math.nan], [math.inf]):
        with pytest.raises(ValueError):
            latency_summary(bad)
