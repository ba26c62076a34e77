"""The offline replay: hot swaps during the stream, served lists, leave-one-out lists."""

from __future__ import annotations

import numpy as np

from tests.unit.training.toy import DIM, catalog, config, successor
from tooling.evaluation import evaluate, leave_one_out
from tooling.simulate import leave_one_out_lists, simulate
from workers.adapters import RecAdapter


def toy_events(users: int = 30, length: int = 12) -> list[dict[str, object]]:
    """Each user walks the successor chain from a random start; events interleaved."""
    rng = np.random.default_rng(0)
    walks = []
    for _ in range(users):
        walk = [f"i{int(rng.integers(40))}"]
        while len(walk) < length:
            walk.append(successor(walk[-1]))
        walks.append(walk)
    return [
        {"user_id": f"u{u}", "item_id": walks[u][t], "scenario": "default"}
        for t in range(length)
        for u in range(users)
    ]


def test_simulation_trains_hot_swaps_and_beats_the_untrained_model() -> None:
    events = toy_events()
    split = leave_one_out(events)
    base = catalog()
    scenarios = {i: "default" for i in base}
    cfg = config(train_every_samples=40, steps_per_round=10)
    frozen = RecAdapter(cfg.adapter_config(DIM))
    adapter = RecAdapter(cfg.adapter_config(DIM))
    adapter.load_state_dict(frozen.state_dict())
    result = simulate(split.train, base, scenarios, cfg, adapter, serve=True)
    trained = [r for r in result.rounds if r.steps]
    assert len(trained) == (len(split.train) - 30) // 40  # first events carry no history
    assert adapter.version == len(trained) and result.train_seconds > 0
    assert result.online is not None and result.online.skipped == 30
    assert result.online.overall.events == len(split.train) - 30

    valid, test = leave_one_out_lists(adapter, split, base, scenarios)
    for user, top in test.items():
        assert len(top) == 10 and not set(top) & split.history(user, "test")
    before = evaluate(leave_one_out_lists(frozen, split, base, scenarios)[0], split.valid)
    after = evaluate(valid, split.valid)
    assert after.ndcg > before.ndcg + 0.3  # ~0.47 -> ~1.0
