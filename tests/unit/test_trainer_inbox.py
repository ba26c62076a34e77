"""The trainer actor's inbox: what `add` keeps until the next round drains it."""

from __future__ import annotations

from workers.trainer_service import TrainerService
from workers.training import Sample, TrainingConfig

DIM = 8


def test_the_trainer_inbox_keeps_at_most_the_buffers_capacity() -> None:
    class NoCatalog:
        def latest(self) -> tuple[int, None]:
            return 0, None

    config = TrainingConfig(buffer_size=5, mode="zero-shot")
    trainer = TrainerService(config, NoCatalog(), DIM, background=False)  # type: ignore[arg-type]
    samples = [Sample(("a",), f"i{n}", "movies") for n in range(8)]
    assert trainer.add(samples[:3]) == 3
    assert trainer.add(samples[3:]) == 5
    assert [s.target for s in trainer._inbox] == ["i3", "i4", "i5", "i6", "i7"]
    assert trainer.status()["samples_received"] == 8
