"""OnlineTrainer: due() logic, rounds and versions, missing vectors, determinism, learning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from tests.unit.training.toy import catalog, config, samples, successor, trainer
from workers.adapters import RecAdapter, load_adapter, save_adapter
from workers.training import OnlineTrainer, Sample


def test_due_after_n_samples_or_t_seconds_with_a_new_sample() -> None:
    t = trainer(train_every_samples=10, train_every_seconds=5.0, min_round_samples=1)
    assert not t.due(0.0)  # nothing new
    t.add(samples(9, seed=0))
    assert not t.due(100.0)  # clock starts at the first due() call
    assert not t.due(104.9)
    assert t.due(105.0)
    t.add(samples(1, seed=1))
    assert t.due(105.0) and t.pending_samples() == 10
    t.add_base_vectors(catalog(), {})
    report = t.train_round(106.0)
    assert report.steps == 5 and report.version == 1 and t.pending_samples() == 0
    assert not t.due(200.0)  # T passed, but nothing new
    t.add(samples(1, seed=2))
    assert not t.due(110.9) and t.due(111.0)  # T counted from the last round


def test_a_round_due_by_time_waits_for_enough_new_samples() -> None:
    """T passed, but a round on 3 new samples would have the gate judge a version on 3
    held-out samples: it waits for min_round_samples (5) of them."""
    t = trainer(train_every_samples=10, train_every_seconds=5.0, min_round_samples=5)
    t.add(samples(3, seed=0))
    assert not t.due(0.0) and not t.due(60.0)
    t.add(samples(2, seed=1))
    assert t.due(60.0)


def test_a_time_minimum_of_n_or_more_leaves_only_the_count() -> None:
    t = trainer(train_every_samples=4, train_every_seconds=5.0, min_round_samples=100)
    t.add(samples(3, seed=0))
    assert not t.due(0.0) and not t.due(1e6)
    t.add(samples(1, seed=1))
    assert t.due(0.0)  # N arrived: due by count, whatever the clock


def test_zero_shot_never_trains() -> None:
    t = trainer(mode="zero-shot", train_every_samples=1)
    t.add_base_vectors(catalog(), {})
    t.add(samples(100, seed=0))
    before = {k: v.clone() for k, v in t.adapter.state_dict().items()}
    assert not t.due(0.0) and not t.due(1e9)
    report = t.train_round(1e9)
    assert report.steps == 0 and report.version == 0 and t.adapter.version == 0
    assert math.isnan(report.loss)
    assert all(torch.equal(v, t.adapter.state_dict()[k]) for k, v in before.items())


def test_missing_vectors_are_reported_and_their_samples_skipped() -> None:
    t = trainer()
    vectors = catalog()
    t.add([Sample(("i1", "i2"), "i3"), Sample(("i4",), "zz")])
    assert t.missing_items() == {"i1", "i2", "i3", "i4", "zz"}
    report = t.train_round(0.0)  # nothing cached: nothing to learn, no new version
    assert report.steps == 0 and report.version == 0
    t.add_base_vectors({k: vectors[k] for k in ("i1", "i3", "i4")}, {"i3": "books"})
    assert t.missing_items() == {"i2", "zz"}
    report = t.train_round(1.0)  # "zz" has no vector: its sample is skipped
    assert report.steps == 5 and report.rows == 5 and report.version == 1
    assert t.adapter.scenarios == {"books": 1}
    # Only cached items reach the model: a target counted before its vector came
    # ("zz", registered by the shrinkage's count) keeps an untrained, zero row.
    residual = t.adapter.item_residual
    assert residual is not None
    trained = {i for i, r in t.adapter.items.items() if residual.table.weight[r].abs().sum() > 0}
    assert trained and trained <= {"i1", "i3", "i4"}
    t.add([Sample(("i9",), "i1")])
    assert t.missing_items() == {"i2", "zz", "i9"}


def test_rounds_are_deterministic_under_the_seed() -> None:
    def run(seed: int) -> dict[str, torch.Tensor]:
        t = trainer(seed=seed, adapter={"dropout": 0.2, "n_experts": 2, "max_items": 64})
        torch.manual_seed(123)  # same init in every run (the adapter is built outside)
        t.adapter.load_state_dict(RecAdapter(t.adapter.config).state_dict())
        t.add_base_vectors(catalog(), {})
        t.add(samples(200, seed=0))
        for now in range(3):
            t.train_round(float(now))
        return {k: v.clone() for k, v in t.adapter.state_dict().items()}

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_rounds_do_not_depend_on_the_order_vectors_arrive_in() -> None:
    # Callers build the vectors' mapping from sets (missing_items), whose order follows
    # Python's hash seed: the same run in two processes must still train the same.
    def run(order: list[str]) -> dict[str, torch.Tensor]:
        t = trainer(seed=0, adapter={"n_experts": 2, "max_items": 64}, negatives=16)
        torch.manual_seed(123)
        t.adapter.load_state_dict(RecAdapter(t.adapter.config).state_dict())
        vectors = catalog()
        t.add_base_vectors({i: vectors[i] for i in order}, {})
        t.add(samples(200, seed=0))
        for now in range(3):
            t.train_round(float(now))
        return {k: v.clone() for k, v in t.adapter.state_dict().items()}

    ids = list(catalog())
    a, b = run(ids), run(ids[::-1])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_a_saved_version(tmp_path: Path) -> None:
    t = trainer()
    t.add_base_vectors(catalog(), {})
    t.add(samples(100, seed=0))
    for now in range(2):
        t.train_round(float(now))
    assert t.adapter.version == 2
    save_adapter(t.adapter, tmp_path, t.adapter.version)
    loaded = load_adapter(tmp_path / "v000002")
    ids = sorted(catalog())
    base = torch.from_numpy(np.stack([catalog()[i] for i in ids]))
    scen = ["default"] * len(ids)
    assert torch.equal(
        loaded.item_vectors(ids, base, scen), t.adapter.item_vectors(ids, base, scen)
    )
    resumed = OnlineTrainer(config(), loaded)
    resumed.add_base_vectors(catalog(), {})
    resumed.add(samples(10, seed=3))
    assert resumed.train_round(5.0).version == 3


def hit_rate(t: OnlineTrainer, test: list[Sample]) -> float:
    """Share of test samples whose target is the top-1 over the catalog, history excluded."""
    vectors = catalog()
    ids = sorted(vectors)
    base = torch.from_numpy(np.stack([vectors[i] for i in ids]))
    rec = t.adapter.item_vectors(ids, base, ["default"] * len(ids))
    col = {item: n for n, item in enumerate(ids)}
    hits = 0
    for s in test:
        user = t.adapter.user_from_items(rec[[col[i] for i in s.history]].unsqueeze(0))
        scores = (user @ rec.T)[0]
        scores[[col[i] for i in s.history]] = -math.inf
        hits += ids[int(scores.argmax())] == s.target
    return hits / len(test)


def test_training_on_a_toy_stream_lowers_the_loss_and_ranks_the_next_item() -> None:
    t = trainer(steps_per_round=20)
    t.add_base_vectors(catalog(), {})
    test = samples(100, seed=99)
    assert all(s.target == successor(s.history[-1]) for s in test)
    before = hit_rate(t, test)
    losses = []
    for round_ in range(8):
        t.add(samples(100, seed=round_))
        losses.append(t.train_round(float(round_)).loss)
    after = hit_rate(t, test)
    assert t.adapter.version == 8
    assert losses[-1] < 0.5 * losses[0]
    assert before < 0.15 and after > 0.6  # the rule is invisible to the text vectors
