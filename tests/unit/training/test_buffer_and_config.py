"""Replay buffer bounds and sampling; TrainingConfig validation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from workers.training import ReplayBuffer, Sample, TrainingConfig


def sample(k: int) -> Sample:
    return Sample((f"h{k}",), f"t{k}", "default")


def test_buffer_keeps_the_most_recent_capacity_samples_oldest_first() -> None:
    buffer = ReplayBuffer(3)
    buffer.add(sample(k) for k in range(2))
    assert len(buffer) == 2 and [s.target for s in buffer] == ["t0", "t1"]
    buffer.add([sample(k) for k in range(2, 7)])
    assert len(buffer) == 3
    assert [s.target for s in buffer] == ["t4", "t5", "t6"]
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)


def test_forgetting_users_drops_every_sample_of_theirs_and_keeps_the_order() -> None:
    buffer = ReplayBuffer(4)
    users = ["a", "b", "a", None, "c", "a"]  # a full ring that has wrapped
    buffer.add(Sample((f"h{k}",), f"t{k}", "default", u) for k, u in enumerate(users))
    assert [s.target for s in buffer] == ["t2", "t3", "t4", "t5"]
    assert buffer.forget({"a", "nobody"}) == 2
    assert [(s.target, s.user_id) for s in buffer] == [("t3", None), ("t4", "c")]
    buffer.add([Sample(("h",), "t6", "default", "b"), Sample(("h",), "t7", "default", "b")])
    buffer.add([Sample(("h",), "t8", "default", "d")])  # full again: the oldest goes first
    assert [s.target for s in buffer] == ["t4", "t6", "t7", "t8"]
    assert buffer.forget(set()) == 0 and buffer.forget({"b"}) == 2
    assert [s.user_id for s in buffer] == ["c", "d"]


def test_buffer_samples_without_replacement_deterministically() -> None:
    buffer = ReplayBuffer(100)
    buffer.add(sample(k) for k in range(50))
    drawn = buffer.sample(20, np.random.default_rng(1))
    assert len({s.target for s in drawn}) == 20
    assert drawn == buffer.sample(20, np.random.default_rng(1))
    assert sorted(s.target for s in buffer.sample(80, np.random.default_rng(2))) == sorted(
        s.target for s in buffer
    )
    assert buffer.sample(0, np.random.default_rng(0)) == []


def test_config_defaults_are_valid_and_documented() -> None:
    config = TrainingConfig()
    assert config.mode == "online"
    adapter = config.adapter_config(384)
    assert adapter.dim == 384 and adapter.max_history == config.max_history
    assert all(f.description for f in TrainingConfig.model_fields.values())


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "offline"},
        {"train_every_samples": 0},
        {"train_every_seconds": 0.0},
        {"batch_size": 0},
        {"negatives": -1},
        {"learning_rate": 0.0},
        {"adapter": {"aggregator": "lstm"}},
        {"adapter": {"rank": 4}},
        {"id_shrinkage": 5},  # an adapter field at the top level: misplaced, not ignored
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrainingConfig.model_validate(bad)
