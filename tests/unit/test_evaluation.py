"""Evaluation harness: exact values on hand-made cases, then the protocol on ML-100K
reproducing the RecBole peers of shared/data/PEERS.md."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tooling.evaluation import baselines, metrics, online, report
from tooling.evaluation.split import Split, leave_one_out


def ev(user: str, item: str, ts: float) -> dict[str, Any]:
    return {"event_id": f"{user}-{item}-{ts}", "user_id": user, "item_id": item, "ts": ts}


# ---- split -----------------------------------------------------------------------


STREAM = [
    ev("u1", "a", 1), ev("u2", "a", 1), ev("u3", "b", 2), ev("u1", "b", 2),
    ev("u2", "c", 3), ev("u4", "x", 5), ev("u4", "y", 5), ev("u1", "c", 6),
    ev("u4", "z", 5), ev("u4", "w", 5), ev("u5", "a", 7), ev("u5", "b", 8), ev("u5", "a", 9),
]  # fmt: skip


def test_leave_one_out_per_user_counts_and_ties() -> None:
    before = copy.deepcopy(STREAM)
    s = leave_one_out(STREAM)
    assert before == STREAM  # input untouched
    # u1: 3 events -> train a, valid b, test c; u2 (2 events), u3 (1 event): train only.
    # u4: four events tied at ts=5 keep stream order: valid z, test w.
    assert s.valid == {"u1": "b", "u4": "z", "u5": "b"}
    assert s.test == {"u1": "c", "u4": "w", "u5": "a"}
    assert [(e["user_id"], e["item_id"]) for e in s.train] == [
        ("u1", "a"), ("u2", "a"), ("u3", "b"), ("u2", "c"), ("u4", "x"), ("u4", "y"), ("u5", "a"),
    ]  # fmt: skip
    assert all(any(e is o for o in STREAM) for e in s.train)
    assert s.items == ("a", "b", "c", "x", "y", "z", "w")
    assert s.train_items_by_user["u4"] == ("x", "y")
    assert s.item_train_counts == {"a": 3, "b": 1, "c": 1, "x": 1, "y": 1}
    assert s.user_train_counts == {"u1": 1, "u2": 2, "u3": 1, "u4": 2, "u5": 1}


def test_histories_follow_recbole() -> None:
    s = leave_one_out(STREAM)
    assert s.history_for_valid("u1") == {"a"}
    assert s.history_for_test("u1") == {"a", "b"}  # the validation item is seen too
    assert s.history_for_test("u2") == {"a", "c"}  # no target: all training items
    # u5 re-consumes "a" as its test target: the target is never excluded (RecBole
    # removes the positives from the used items).
    assert s.history_for_test("u5") == {"b"}
    assert s.history_for_valid("u5") == {"a"}
    assert s.history("u1", "valid") == s.history_for_valid("u1")
    assert s.targets("valid") == s.valid and s.targets("valid") is not s.valid
    with pytest.raises(ValueError):
        s.history("u1", "train")
    with pytest.raises(ValueError):
        leave_one_out(STREAM, min_events=2)


def test_empty_and_short_streams() -> None:
    assert leave_one_out([]) == Split([], {}, {}, ())
    s = leave_one_out([ev("u", "a", 1), ev("u", "b", 1)])
    assert (s.valid, s.test, len(s.train)) == ({}, {}, 2)


# ---- metrics ---------------------------------------------------------------------


def test_ranking_metrics_exact() -> None:
    ranked = {"a": ["1", "2", "3"], "b": ["4", "5", "6", "7"], "c": ["7", "8"], "x": ["9"]}
    targets = {"a": "1", "b": "6", "c": "9", "d": "1"}  # c: absent, d: no list, x: no target
    before = (copy.deepcopy(ranked), dict(targets))
    m = metrics.evaluate(ranked, targets, k=3, catalog_size=10)
    assert (ranked, targets) == before
    assert (m.k, m.users) == (3, 4)
    assert m.recall == m.hit == pytest.approx(2 / 4)
    assert m.ndcg == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert m.mrr == pytest.approx((1 + 1 / 3) / 4)
    assert m.precision == pytest.approx(2 / (4 * 3))
    f1_hit = 2 * (1 / 3) * 1 / (1 / 3 + 1)  # per-user F1 of a hit, averaged over 4 users
    assert m.f1 == pytest.approx(2 * f1_hit / 4) == pytest.approx(0.25)
    assert m.coverage == pytest.approx(8 / 10)  # 1,2,3 4,5,6 7,8: top-3 cut, x ignored


def test_cutoff_duplicates_and_edges() -> None:
    assert metrics.rank_of(["x", "y", "t"], "t", 2) is None
    assert metrics.rank_of(["x", "y", "t"], "t", 3) == 2
    assert metrics.rank_of(["t", "t"], "t", 2) == 0  # first occurrence counts
    one = metrics.evaluate({"u": ["x", "y", "t"]}, {"u": "t"}, k=2)
    assert (one.recall, one.ndcg, one.mrr, one.coverage) == (0.0, 0.0, 0.0, None)
    ten = metrics.evaluate({"u": [str(i) for i in range(12)]}, {"u": "9"}, k=10)
    assert ten.ndcg == pytest.approx(1 / math.log2(11)) and ten.mrr == pytest.approx(0.1)
    assert ten.f1 == pytest.approx(2 / 11)
    assert metrics.evaluate({}, {}, k=5).users == 0
    with pytest.raises(ValueError):
        metrics.evaluate({}, {}, k=0)


def test_prequential_running_windows_versions() -> None:
    obs = [
        online.Observation("u1", "A", None),
        online.Observation("u1", "B", ["B", "C"], "v1"),
        online.Observation("u2", "X", ("A", "X"), "v1"),
        online.Observation("u1", "C", ["A", "B", "C"], "v2"),  # C beyond k=2
        online.Observation("u2", "Y", [], "v2"),
    ]
    r = online.prequential(obs, k=2, window=2)
    g = 1 / math.log2(3)
    assert r.skipped == 1 and r.overall.events == 4
    assert r.overall.hr == pytest.approx(0.5) and r.overall.ndcg == pytest.approx((1 + g) / 4)
    assert r.running_hr == pytest.approx((1.0, 1.0, 2 / 3, 0.5))
    assert r.running_ndcg == pytest.approx((1.0, (1 + g) / 2, (1 + g) / 3, (1 + g) / 4))
    assert [(w.start, w.end, w.point.events) for w in r.windows] == [(0, 2, 2), (2, 4, 2)]
    assert r.windows[0].point.ndcg == pytest.approx((1 + g) / 2) and r.windows[1].point.hr == 0
    assert r.by_version["v1"].hr == 1.0 and r.by_version["v2"].hr == 0.0
    assert list(r.by_version) == ["v1", "v2"]
    assert online.prequential([], window=3).overall.events == 0


def test_observations_from_stream() -> None:
    events = [ev("u1", "A", 1), ev("u2", "X", 1), ev("u1", "B", 2), ev("u1", "C", 3)]
    ids = [e["event_id"] for e in events]
    served = {ids[0]: ["B"], ids[1]: ["Y"], ids[2]: ["Z"]}
    obs = online.observations_from_stream(events, served, {ids[0]: "v1", ids[2]: "v2"})
    assert [(o.user, o.item, o.recommended, o.version) for o in obs] == [
        ("u1", "A", None, ""), ("u2", "X", None, ""), ("u1", "B", ("B",), "v1"),
        ("u1", "C", ("Z",), "v2"),
    ]  # fmt: skip


# ---- baselines -------------------------------------------------------------------

TOY = [
    ev("u1", "1", 1), ev("u1", "2", 2), ev("u1", "3", 3), ev("u1", "4", 4),
    ev("u2", "1", 1), ev("u2", "3", 2), ev("u2", "2", 3), ev("u2", "5", 4),
    ev("u3", "2", 1), ev("u3", "10", 2), ev("u3", "1", 3), ev("u3", "9", 4),
    ev("u4", "9", 1), ev("u4", "10", 2),
]  # fmt: skip
# train: u1 {1,2}, u2 {1,3}, u3 {2,10}, u4 {9,10}; counts 1:2 2:2 10:2 3:1 9:1 4:0 5:0


def test_most_popular_ties_by_numeric_id_and_histories() -> None:
    s = leave_one_out(TOY)
    assert baselines.most_popular(s, 3) == {
        "u1": ["10", "9", "4"], "u2": ["10", "9", "4"], "u3": ["3", "9", "4"],
    }  # fmt: skip
    assert baselines.most_popular(s, 3, "valid") == {
        "u1": ["10", "3", "9"], "u2": ["2", "10", "9"], "u3": ["1", "3", "9"],
    }  # fmt: skip
    m = metrics.evaluate(baselines.most_popular(s, 3), s.test, k=3)
    assert m.recall == pytest.approx(2 / 3) and m.mrr == pytest.approx((1 / 3 + 1 / 2) / 3)
    assert baselines.most_popular(s, 2, catalog=["5", "4", "1"])["u1"] == ["4", "5"]
    with pytest.raises(ValueError):
        baselines.most_popular(s, 0)


def test_item_knn_hand_computed() -> None:
    s = leave_one_out(TOY)
    before = copy.deepcopy(TOY)
    # cos(2,10) = 1/2, cos(9,10) = 1/sqrt(2); u1 scores 10 by its training item 2.
    assert baselines.item_knn(s, 3) == {"u1": ["10", "4", "5"], "u2": ["4", "5", "9"],
                                        "u3": ["9", "3", "4"]}  # fmt: skip
    # one neighbour: 10 keeps only 9 (1/sqrt(2) > 1/2), so u1 no longer scores it
    assert baselines.item_knn(s, 3, neighbours=1)["u1"] == ["4", "5", "9"]
    assert before == TOY


def _reference_knn(s: Split, k: int, for_: str, n: int, shrink: float) -> dict[str, list[str]]:
    items = baselines.catalog_order(s.items)
    cols = {i: {u for u, its in s.train_items_by_user.items() if i in its} for i in items}

    def sim(a: str, b: str) -> float:
        den = math.sqrt(len(cols[a])) * math.sqrt(len(cols[b])) + shrink + 1e-6
        return 0.0 if a == b else len(cols[a] & cols[b]) / den

    out = {}
    for user, _ in s.targets(for_).items():
        profile, seen = set(s.train_items_by_user.get(user, ())), s.history(user, for_)
        scores = {}
        for i in items:
            near = sorted(items, key=lambda j: (-round(sim(j, i), 6), baselines.id_key(j)))[:n]
            scores[i] = sum(sim(j, i) for j in near if j in profile)
        ranked = sorted((i for i in items if i not in seen), key=lambda i: -round(scores[i], 5))
        out[user] = ranked[:k]
    return out


@pytest.mark.parametrize(("n", "shrink"), [(1, 0.0), (2, 0.0), (3, 2.0), (100, 0.0)])
def test_item_knn_matches_reference(n: int, shrink: float) -> None:
    rng = np.random.default_rng(7)
    events = [ev(f"u{u}", str(int(i)), t) for t, (u, i) in enumerate(rng.integers(0, 9, (90, 2)))]
    s = leave_one_out(events)
    for for_ in ("test", "valid"):
        got = baselines.item_knn(s, 4, for_, neighbours=n, shrink=shrink, block=3)
        assert got == _reference_knn(s, 4, for_, n, shrink)


def test_top_per_column_keeps_lower_rows_on_ties() -> None:
    sim = np.array([[0.5, 0.0], [0.9, 0.0], [0.5, 0.0], [0.5, 1.0]], dtype=np.float32)
    mask = baselines._top_per_column(sim, 2)
    assert mask[:, 0].tolist() == [True, True, False, False]
    assert mask[:, 1].tolist() == [True, False, False, True]


def test_report_renders_peers_beside() -> None:
    peers = report.parse_peers("x\n| DS (3 users) | Recall@10 | NDCG@10 | MRR@10 | note |\n"
                               "|---|---|---|---|---|\n| Pop | 0.1 | 0.05 | 0.02 | hi |\n"
                               "| BPR | 0.2 | 0.1 | 0.03 | |\n")  # fmt: skip
    assert peers == {"DS": {"Pop": {"Recall@10": 0.1, "NDCG@10": 0.05, "MRR@10": 0.02},
                            "BPR": {"Recall@10": 0.2, "NDCG@10": 0.1, "MRR@10": 0.03}}}  # fmt: skip
    m = metrics.RankingMetrics(10, 5, 0.2, 0.1, 0.05, 0.02, 0.036, 0.5)
    table = report.render({"pop": m}, peers["DS"]).splitlines()
    ours, theirs = "0.2000 | 0.1000 | 0.0500 | 0.0200 | 0.0360 | 0.5000", "0.1000 | 0.0500 | 0.0200"
    assert table[2] == f"| pop | {ours} | {theirs} |"
    assert table[3].startswith("| BPR |  |") and table[3].endswith("| 0.2000 | 0.1000 | 0.0300 |")


# ---- real data: the protocol reproduces the RecBole peers (shared/data/PEERS.md) ---------
# ItemKNN is deterministic given the split; it matches the peers' 4-decimal values, so
# the bound is 0.0006: under one hit of Recall (1/943 = 0.00106), so one user's target
# moving in or out of the top 10 fails it. Getting the protocol wrong moves it further
# (negative controls below: not excluding the validation item at test -0.0011 Recall,
# ties in reverse file order -0.0032).

PEER_ITEMKNN = {"recall": 0.1124, "ndcg": 0.0619, "mrr": 0.0466}
PEER_POP = {"recall": 0.0764, "ndcg": 0.0377, "mrr": 0.0258}
EXACT = 0.0006


@pytest.fixture(scope="module")
def ml100k_events(shared_data: Path) -> list[dict[str, Any]]:
    from tooling.datasets import load_ml100k

    return load_ml100k(shared_data / "ml-100k").events


@pytest.fixture(scope="module")
def ml100k(ml100k_events: list[dict[str, Any]]) -> Split:
    return leave_one_out(ml100k_events)


def _measure(s: Split, ranked: dict[str, list[str]]) -> dict[str, float]:
    m = metrics.evaluate(ranked, s.test, k=10, catalog_size=len(s.items))
    return {"recall": m.recall, "ndcg": m.ndcg, "mrr": m.mrr}


def test_ml100k_split_shape(ml100k: Split, ml100k_events: list[dict[str, Any]]) -> None:
    assert (len(ml100k.test), len(ml100k.valid), len(ml100k.items)) == (943, 943, 1682)
    assert len(ml100k.train) == 100_000 - 2 * 943
    last_two: dict[str, list[float]] = {}
    for e in ml100k_events:
        last_two.setdefault(e["user_id"], []).append(e["ts"])
    assert sum(ts[-1] == ts[-2] for ts in last_two.values()) == 415  # as PEERS.md says


def test_ml100k_item_knn_reproduces_recbole(ml100k: Split) -> None:
    got = _measure(ml100k, baselines.item_knn(ml100k, 10))
    assert got == pytest.approx(PEER_ITEMKNN, abs=EXACT), got


class _ValidNotExcluded(Split):
    def history_for_test(self, user: str) -> frozenset[str]:
        return self.history_for_valid(user)


def test_ml100k_protocol_errors_are_detected(
    ml100k: Split, ml100k_events: list[dict[str, Any]]
) -> None:
    wrong = [
        _ValidNotExcluded(ml100k.train, ml100k.valid, ml100k.test, ml100k.items),
        leave_one_out(sorted(reversed(ml100k_events), key=lambda e: e["ts"])),
    ]
    for s in wrong:
        got = _measure(s, baselines.item_knn(s, 10))
        assert got != pytest.approx(PEER_ITEMKNN, abs=EXACT), got


def test_ml100k_pop(ml100k: Split) -> None:
    """Textbook Pop (interaction counts) scores above RecBole's Pop row; the gap is
    RecBole's model, not the protocol: its Pop counts an item once per training batch
    (positives and sampled negatives). Our emulation of that, averaged over 8 seeds,
    lands on the peers' row. One RecBole run varies with its seed by sd 0.0047 Recall /
    0.0034 NDCG (20 emulated seeds), the 8-seed mean by ~0.0017 / 0.0012: the bounds
    0.010 / 0.0075 are 2 sd of (single peer run - our mean)."""
    ours = _measure(ml100k, baselines.most_popular(ml100k, 10))
    assert ours == pytest.approx({"recall": 81 / 943, "ndcg": 0.04488, "mrr": 0.03256}, abs=5e-5)
    runs = [_measure(ml100k, baselines.recbole_pop(ml100k, 10, seed=seed)) for seed in range(8)]
    mean = {key: float(np.mean([r[key] for r in runs])) for key in PEER_POP}
    assert abs(mean["recall"] - PEER_POP["recall"]) < 0.010, mean
    assert abs(mean["ndcg"] - PEER_POP["ndcg"]) < 0.0075, mean
    assert abs(mean["mrr"] - PEER_POP["mrr"]) < 0.0075, mean
    assert ours["recall"] - mean["recall"] > 0.008  # the textbook Pop is really different
