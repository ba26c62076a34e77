"""Cold-start slices and score_model: membership on a hand-made split, metrics by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from tooling.evaluation import (
    COLD_START_SLICES,
    SliceSpec,
    Split,
    evaluate,
    evaluate_slices,
    leave_one_out,
    score_model,
    slice_targets,
)


def ev(user: str, item: str) -> dict[str, Any]:
    return {"user_id": user, "item_id": item}


# Training counts: items a 5, b 3, c 2, d 2, e 1, f 1, g 0, h 0 (repeats count);
# users u1 5, u2 2, u3 6, u4 1.
TRAIN: list[Mapping[str, Any]] = [
    *(ev("u1", i) for i in "abcde"),
    *(ev("u2", i) for i in "ab"),
    *(ev("u3", i) for i in "aaabcd"),
    ev("u4", "f"),
]
SPLIT = Split(
    train=TRAIN,
    valid={"u1": "a", "u2": "h", "u3": "f", "u4": "c"},
    test={"u1": "g", "u2": "a", "u3": "e", "u4": "b"},
    items=tuple("abcdefgh"),
)
COLD, RARE, USERS = COLD_START_SLICES


def test_default_slices_are_the_three_cold_start_rules() -> None:
    assert [(s.on, s.below) for s in COLD_START_SLICES] == [("item", 1), ("item", 5), ("user", 5)]
    assert COLD.description == "target item with 0 training interactions"
    assert RARE.description == "target item with < 5 training interactions"
    assert USERS.description == "user with < 5 training events"


def test_slice_membership_on_test_and_valid() -> None:
    # boundaries: item "a" has exactly 5 training interactions and user u1 exactly 5
    # training events: neither is "< 5".
    assert slice_targets(SPLIT, COLD, "test") == {"u1": "g"}
    assert slice_targets(SPLIT, RARE, "test") == {"u1": "g", "u3": "e", "u4": "b"}
    assert slice_targets(SPLIT, USERS, "test") == {"u2": "a", "u4": "b"}
    assert slice_targets(SPLIT, COLD, "valid") == {"u2": "h"}
    assert slice_targets(SPLIT, RARE, "valid") == {"u2": "h", "u3": "f", "u4": "c"}
    assert slice_targets(SPLIT, USERS, "valid") == {"u2": "h", "u4": "c"}
    with pytest.raises(ValueError):
        slice_targets(SPLIT, COLD, "train")


def test_slices_from_leave_one_out_count_training_only() -> None:
    # u1: x, y, y -> train {x}, valid y, test y; u2: x, q, w, z -> train {x, q}, valid w,
    # test z. u1's test item y was consumed at validation, yet it has 0 *training*
    # interactions: the validation event is not training data for the test slices.
    events = [ev("u1", "x"), ev("u2", "x"), ev("u1", "y"), ev("u2", "q"), ev("u1", "y")]
    events += [ev("u2", "w"), ev("u2", "z")]
    s = leave_one_out(events)
    assert (s.valid, s.test) == ({"u1": "y", "u2": "w"}, {"u1": "y", "u2": "z"})
    assert slice_targets(s, COLD, "test") == {"u1": "y", "u2": "z"}
    assert slice_targets(s, SliceSpec("once", "item", 2), "valid") == {"u1": "y", "u2": "w"}


def test_slice_metrics_by_hand() -> None:
    ranked = {
        "u1": ["g", "x", "y"],  # hit at rank 0
        "u2": ["x", "a", "y"],  # hit at rank 1
        "u3": ["x", "y", "z"],  # miss
        "u4": ["x", "y", "b"],  # hit at rank 2
    }
    got = evaluate_slices(SPLIT, ranked, "test", k=3, catalog_size=10)
    assert list(got) == [s.name for s in COLD_START_SLICES]
    cold, rare, users = (got[s.name] for s in COLD_START_SLICES)
    assert (cold.users, cold.recall, cold.ndcg, cold.mrr) == (1, 1.0, 1.0, 1.0)
    assert cold.precision == pytest.approx(1 / 3) and cold.f1 == pytest.approx(0.5)
    assert cold.coverage == pytest.approx(0.3)
    assert rare.users == 3 and rare.recall == pytest.approx(2 / 3)
    assert rare.ndcg == pytest.approx((1 + 0.5) / 3) and rare.mrr == pytest.approx(4 / 9)
    assert rare.precision == pytest.approx(2 / 9) and rare.f1 == pytest.approx(1 / 3)
    assert rare.coverage == pytest.approx(0.5)  # g x y z b
    assert users.users == 2 and users.recall == 1.0
    assert users.ndcg == pytest.approx((1 / math.log2(3) + 0.5) / 2)
    assert users.mrr == pytest.approx(5 / 12) and users.coverage == pytest.approx(0.4)


def test_empty_slice_and_bad_specs() -> None:
    got = evaluate_slices(SPLIT, {}, "valid", slices=[SliceSpec("none", "user", 1)])
    assert got["none"].users == 0 and got["none"].coverage is None
    with pytest.raises(ValueError, match="distinct"):
        evaluate_slices(SPLIT, {}, slices=[COLD, COLD])
    for bad in (("x", "item", 0), ("x", "items", 5), ("", "user", 5)):
        with pytest.raises(ValueError):
            SliceSpec(*bad)


def test_score_model_both_phases_and_slices() -> None:
    test = {u: [i, "z"] for u, i in SPLIT.test.items()}  # every test target at rank 0
    r = score_model("m", SPLIT, test, k=2)
    assert r.name == "m" and r.valid is None and r.valid_slices == {}
    assert (r.test.users, r.test.recall, r.test.coverage) == (4, 1.0, 5 / 8)  # g a e b z / 8
    assert r.test_slices[RARE.name].users == 3 and r.test_slices[RARE.name].recall == 1.0
    valid = {u: ["z"] for u in SPLIT.valid}
    r2 = score_model("m", SPLIT, test, valid, k=2, catalog_size=100)
    assert r2.valid == evaluate(valid, SPLIT.valid, 2, 100) and r2.valid.recall == 0.0
    assert r2.valid_slices[USERS.name].users == 2
