"""The version gate: held-out fresh samples, the score, the verdict (paired, with the frozen
model as a floor), accept / reject / restart, anchor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit.training.test_trainer import hit_rate
from tests.unit.training.toy import catalog, samples, successor, trainer
from workers.training import OnlineTrainer, ReplayBuffer, Sample
from workers.training.gate import goes_live, prequential_gains, prequential_ndcg, usable


def other_rule(item: str, n: int = 40) -> str:
    """A second hidden rule that disagrees with `successor` (a burst of other behaviour)."""
    return f"i{(11 * int(item[1:]) + 5) % n}"


def other_samples(count: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        first = f"i{int(rng.integers(40))}"
        second = other_rule(first)
        out.append(Sample((first, second), other_rule(second), "default"))
    return out


def state(t: OnlineTrainer, which: str) -> dict[str, torch.Tensor]:
    model = t.live if which == "live" else t.adapter
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_newest_samples_are_held_out_of_training_even_once_the_ring_wraps() -> None:
    buffer = ReplayBuffer(10)
    buffer.add(Sample((), f"t{n}") for n in range(25))  # wrapped: t15 .. t24 kept
    assert [s.target for s in buffer.newest(3)] == ["t22", "t23", "t24"]
    rng = np.random.default_rng(0)
    for _ in range(50):
        drawn = {s.target for s in buffer.sample(5, rng, hold_out=3)}
        assert drawn <= {f"t{n}" for n in range(15, 22)}
    assert len(buffer.sample(100, rng, hold_out=3)) == 7
    assert buffer.sample(5, rng, hold_out=10) == []


def test_the_score_is_ndcg_of_the_target_among_every_cached_item_history_excluded() -> None:
    t = trainer(gate=True)
    t.add_base_vectors(catalog(), {})
    held = samples(30, seed=5)
    ids = sorted(catalog())
    base = torch.from_numpy(np.stack([catalog()[i] for i in t.vectors.ids]))
    rec = t.live.item_vectors(t.vectors.ids, base, ["default"] * len(ids))
    col = {item: n for n, item in enumerate(t.vectors.ids)}
    expected = []
    for s in held:
        user = t.live.user_from_items(rec[[col[i] for i in s.history]].unsqueeze(0))[0]
        scores = rec @ user
        scores[[col[i] for i in s.history]] = -math.inf
        rank = int((scores > scores[col[s.target]]).sum())
        expected.append(1 / math.log2(rank + 2) if rank < 10 else 0.0)
    got = prequential_ndcg(t.live, usable(held, t.vectors), t.vectors)
    assert got == pytest.approx(float(np.mean(expected)), abs=1e-6)
    assert usable([Sample(("zz",), "i1"), Sample(("i1",), "zz")], t.vectors) == []
    assert math.isnan(prequential_ndcg(t.live, [], t.vectors))


def test_a_better_candidate_goes_live_and_a_worse_one_is_rejected_while_the_live_serves() -> None:
    t = trainer(gate=True, gate_samples=100, steps_per_round=20, buffer_size=300)
    t.add_base_vectors(catalog(), {})
    t.add(samples(200, seed=0))  # the newest 100 are held out, the older 100 trained on
    first = t.train_round(1.0)
    assert first.steps == 20 and first.gate_samples == 100
    assert first.accepted and first.version == 1 and t.live.version == 1
    assert first.candidate_score > first.live_score
    assert same(state(t, "live"), state(t, "candidate"))
    for n in range(1, 4):  # learn the rule well (a tie with the live version is rejected)
        t.add(samples(150, seed=n))
        t.train_round(1.0 + n)
    assert t.live.version >= 2
    live_version = t.live.version
    learned = hit_rate(t, samples(100, seed=99))
    live_before = state(t, "live")

    # A burst of other behaviour fills the buffer; the newest (held-out) samples follow the
    # usual rule again: trained on the burst alone, the candidate forgets it.
    t.add(other_samples(300, seed=7))
    t.add(samples(100, seed=8))
    report = t.train_round(10.0)
    assert report.steps == 20 and not report.accepted and report.version == live_version
    assert report.candidate_score < report.live_score
    assert t.live.version == live_version
    assert same(live_before, state(t, "live"))  # what serves did not move ...
    assert not same(live_before, state(t, "candidate"))  # ... training went on beside it
    assert hit_rate(t, samples(100, seed=99)) < learned  # the candidate (t.adapter) forgot


def test_without_a_gate_every_round_goes_live() -> None:
    t = trainer(gate=False)
    t.add_base_vectors(catalog(), {})
    t.add(samples(100, seed=0))
    report = t.train_round(1.0)
    assert report.accepted and report.version == 1 and t.live is t.adapter
    assert math.isnan(report.live_score) and report.gate_samples == 0


def test_a_round_with_only_held_out_samples_trains_nothing() -> None:
    t = trainer(gate=True, gate_samples=1000)
    t.add_base_vectors(catalog(), {})
    t.add(samples(50, seed=0))
    report = t.train_round(1.0)  # all 50 are new: all held out, nothing to train on
    assert report.steps == 0 and report.version == 0
    t.add(samples(50, seed=1))  # now the first 50 train and the new 50 judge
    assert t.train_round(2.0).steps == 5


def test_patience_restarts_the_candidate_from_the_live_version() -> None:
    t = trainer(gate=True, gate_samples=100, steps_per_round=20, buffer_size=300, gate_patience=1)
    t.add_base_vectors(catalog(), {})
    for n in range(4):
        t.add(samples(150, seed=n))
        t.train_round(float(n))
    assert t.live.version >= 1
    t.add(other_samples(300, seed=7))
    t.add(samples(100, seed=8))
    report = t.train_round(10.0)
    assert not report.accepted
    assert same(state(t, "live"), state(t, "candidate"))
    assert t.adapter.version == t.live.version and t.adapter.items == t.live.items


def test_the_anchor_keeps_the_projection_near_its_start() -> None:
    def drift(anchor: float) -> float:
        t = trainer(anchor=anchor, steps_per_round=20)
        start = {k: v.clone() for k, v in t.adapter.moe.state_dict().items()}
        t.add_base_vectors(catalog(), {})
        for n in range(3):
            t.add(samples(100, seed=n))
            t.train_round(float(n))
        return sum(
            float((v - start[k]).pow(2).sum()) for k, v in t.adapter.moe.state_dict().items()
        )

    assert drift(10.0) < 0.5 * drift(0.0)
    assert successor("i1") == "i10"  # the toy rule the samples follow


NOISY = np.array([0.0, 1.0, 0.5, 0.0, 0.3, 1.0, 0.0, 0.6, 0.2, 0.0] * 30)


def test_a_tie_within_what_the_samples_tell_apart_goes_live_only_with_a_tolerance() -> None:
    rng = np.random.default_rng(0)
    candidate = np.clip(NOISY + rng.normal(0.0, 0.2, len(NOISY)), 0.0, 1.0)
    candidate += NOISY.mean() - candidate.mean() - 0.005  # 0.005 below the live mean
    assert goes_live(NOISY, candidate, math.nan, tolerance=1.0)
    assert not goes_live(NOISY, candidate, math.nan, tolerance=0.0)  # the strict rule


def test_a_measurably_worse_candidate_is_rejected_despite_the_tolerance() -> None:
    worse = NOISY * 0.8  # every sample's gain lower: the paired difference is clear
    assert not goes_live(NOISY, worse, math.nan, tolerance=1.0)
    assert not goes_live(NOISY, worse, math.nan, tolerance=3.0)


def test_the_frozen_model_is_a_floor_even_for_a_better_candidate() -> None:
    better = NOISY * 1.1
    assert goes_live(NOISY, better, float(NOISY.mean()), tolerance=1.0)
    assert not goes_live(NOISY, better, float(better.mean()) + 0.01, tolerance=1.0)
    assert goes_live(NOISY, better, float(better.mean()), tolerance=0.0)  # reaching it is enough


def test_no_samples_no_new_version() -> None:
    assert not goes_live(np.zeros(0), np.zeros(0), math.nan, tolerance=1.0)
    assert not goes_live(np.ones(3), np.ones(2), math.nan, tolerance=1.0)
    assert not goes_live(np.ones(5), np.ones(5), math.nan, tolerance=1.0)  # identical: no gain


def test_the_rounds_report_the_frozen_models_score_and_it_is_the_untrained_adapter() -> None:
    t = trainer(gate=True, gate_samples=100, steps_per_round=20, buffer_size=300)
    t.add_base_vectors(catalog(), {})
    t.add(samples(200, seed=0))
    untrained = prequential_ndcg(t.live, usable(samples(200, seed=0)[-100:], t.vectors), t.vectors)
    report = t.train_round(1.0)
    assert report.frozen_score == pytest.approx(untrained)
    assert report.accepted and report.candidate_score > report.frozen_score
    gains = prequential_gains(t.live, usable(samples(100, seed=5), t.vectors), t.vectors)
    assert gains.shape == (100,) and ((gains >= 0) & (gains <= 1)).all()
