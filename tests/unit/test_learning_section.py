"""The report's online-vs-zero-shot section: shares of the stream, the gate's decisions."""

from __future__ import annotations

from tooling.evaluation import Observation, StreamRun, equal_windows, prequential
from tooling.evaluation.learning_section import learning_section


def stream(name: str, hits: list[bool], rounds: list[dict[str, object]] = ()) -> StreamRun:  # type: ignore[assignment]
    observations = [Observation("u", "x" if hit else "y", ["x"]) for hit in hits]
    return StreamRun(name, prequential(observations, k=10, window=5), rounds=list(rounds))


def test_shares_compare_with_zero_shot_at_the_same_positions_and_count_decisions() -> None:
    # 20 events: online hits the second half only, zero-shot hits every 4th event.
    online_hits = [n >= 10 for n in range(20)]
    frozen_hits = [n % 4 == 0 for n in range(20)]
    rounds = [
        {"samples_seen": 3, "accepted": False, "candidate_score": 0.1, "frozen_score": 0.2},
        {"samples_seen": 11, "accepted": True},
        {"samples_seen": 12, "accepted": False, "candidate_score": 0.3, "frozen_score": 0.2},
    ]
    runs = [
        stream("streamrec online", online_hits, rounds),
        stream("streamrec zero-shot", frozen_hits),
    ]
    shares = equal_windows(runs[0].prequential, 10)
    assert [(a, b) for a, b, _ in shares] == [(2 * n, 2 * n + 2) for n in range(10)]
    text = "\n".join(learning_section(runs, 10))
    assert (
        "3 training rounds, 1 accepted, 2 rejected (1 of them below the frozen model on the"
        " held-out samples); below zero-shot in 3 of 10 shares" in text
    )
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| 1-2 | 0.0000 | 0.5000 | -0.5000 |")  # events 1-2
    assert lines[2].endswith("| 0 | 1 |")  # events 3-4: the rejected round at sample 3
    assert lines[6].startswith("| 11-12 | 1.0000 | 0.0000 | +1.0000 |")
    assert lines[6].endswith("| 1 | 0 |") and lines[7].endswith("| 0 | 1 |")


def test_without_a_zero_shot_or_trained_replay_it_says_so() -> None:
    only = [stream("streamrec online", [True, False], [{"samples_seen": 1, "accepted": True}])]
    assert "Needs a zero-shot replay" in "\n".join(learning_section(only, 10))
