"""The report's variance-over-seeds section: one row per seed, mean ± sd, zero-shot beside."""

from __future__ import annotations

import dataclasses

import pytest

from tooling.evaluation import (
    COLD_START_SLICES,
    Evaluation,
    ModelResult,
    Observation,
    RankingMetrics,
    StreamRun,
    prequential,
    render_evaluation,
)
from tooling.evaluation.seeds_section import seeds_section

COLD, RARE, USERS = (s.name for s in COLD_START_SLICES)


def metrics(users: int, recall: float, ndcg: float) -> RankingMetrics:
    return RankingMetrics(10, users, recall, ndcg, ndcg, recall / 10, recall / 5, 0.5)


def model(name: str, recall: float, ndcg: float, valid: float, rare: float) -> ModelResult:
    return ModelResult(
        name,
        test=metrics(100, recall, ndcg),
        valid=metrics(100, recall, valid),
        test_slices={COLD: metrics(4, 0.25, 0.1), RARE: metrics(20, rare, rare / 2)},
    )


def stream(name: str, hits: list[bool], accepted: list[bool] = ()) -> StreamRun:  # type: ignore[assignment]
    observations = [Observation("u", "x" if hit else "y", ["x"]) for hit in hits]
    rounds = [{"samples_seen": n, "accepted": a} for n, a in enumerate(accepted)]
    return StreamRun(name, prequential(observations, k=10, window=5), rounds=rounds)


SEEDS = [(7, "streamrec online"), (8, "streamrec online, seed 8")]
MODELS = [
    model("streamrec online", 0.10, 0.05, 0.04, 0.2),
    model("streamrec online, seed 8", 0.20, 0.07, 0.06, 0.4),
    model("streamrec zero-shot", 0.05, 0.02, 0.01, 0.3),
]
STREAMS = [
    stream("streamrec online", [n >= 10 for n in range(20)], [True, False, True]),  # HR 0.5
    stream("streamrec online, seed 8", [True] * 20, [True]),  # HR 1.0
    stream("streamrec zero-shot", [n % 4 == 0 for n in range(20)]),  # HR 0.25
]


def rows(lines: list[str]) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[6:]]


def test_one_row_per_seed_then_mean_and_sd_then_zero_shot() -> None:
    lines = seeds_section(SEEDS, MODELS, STREAMS, 10)
    assert lines[0] == "## Variance over 2 seeds (@10)"
    assert f"{COLD}: 4 users; {RARE}: 20 users" in lines[2]
    table = rows(lines)
    # shares: the first half misses where zero-shot hits every 4th event
    assert table[0][:7] == ["7", "0.1000", "0.0500", "0.0400", "0.2500", "0.2000", "0.5000"]
    assert table[0][7:] == ["3 of 10", "3 (2)"]
    assert table[1][:7] == ["8", "0.2000", "0.0700", "0.0600", "0.2500", "0.4000", "1.0000"]
    assert table[1][7:] == ["0 of 10", "1 (1)"]
    # mean ± sample sd (n - 1): recall 0.15 ± 0.0707, stream HR 0.75 ± 0.3536
    assert table[2][:3] == ["mean ± sd", "0.1500 ± 0.0707", "0.0600 ± 0.0141"]
    assert table[2][6] == "0.7500 ± 0.3536" and table[2][4] == "0.2500 ± 0.0000"
    assert table[3][0] == "streamrec zero-shot"
    assert table[3][1:7] == ["0.0500", "0.0200", "0.0100", "0.2500", "0.3000", "0.2500"]


def test_a_single_seed_adds_no_section() -> None:
    assert seeds_section(SEEDS[:1], MODELS, STREAMS, 10) == []
    bare = Evaluation(dataset="DS", seed=7, split_sizes=(), settings=(), models=MODELS)
    assert "Variance over" not in render_evaluation(bare)


def test_the_report_renders_it_and_refuses_a_seed_without_its_runs() -> None:
    e = Evaluation(
        dataset="DS",
        seed=7,
        split_sizes=(),
        settings=(),
        models=MODELS,
        streams=STREAMS,
        seeds=SEEDS,
    )
    assert "## Variance over 2 seeds (@10)" in render_evaluation(e)
    with pytest.raises(ValueError, match="seed 9"):
        dataclasses.replace(e, seeds=[*SEEDS, (9, "streamrec online, seed 9")])
