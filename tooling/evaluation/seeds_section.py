"""The report's "variance over seeds" section: one setting trained with several seeds
on the same stream, so differences between settings or runs can be judged.

In: the seeds and the names of their runs (each name is both a `ModelResult` and a
whole-stream `StreamRun`), every model and stream of the report. Out: markdown lines:
one row per seed (test and validation metrics, the cold- and rare-item slices, the
stream's HR and the shares of it below zero-shot, the gate's rounds), then mean ± sd
(sample standard deviation, n - 1) and the zero-shot run's row for reference. Pure: no
I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from tooling.evaluation.learning_section import ZERO_SHOT, shares_below
from tooling.evaluation.markdown import cell, table
from tooling.evaluation.metrics import RankingMetrics
from tooling.evaluation.results import ModelResult, StreamRun

COLD = "cold items (0 train)"
RARE = "rare items (<5 train)"


def seed_runs(first: int, count: int) -> list[tuple[int, str]]:
    """(seed, run name) of ``count`` online runs from seed ``first``; the first keeps the
    plain name "streamrec online"."""
    runs = [(first, "streamrec online")]
    return runs + [(s, f"streamrec online, seed {s}") for s in range(first + 1, first + count)]


def seeds_section(
    seeds: Sequence[tuple[int, str]],
    models: Sequence[ModelResult],
    streams: Sequence[StreamRun],
    k: int,
) -> list[str]:
    """Empty when fewer than two seeds ran."""
    if len(seeds) < 2:
        return []
    model_of = {m.name: m for m in models}
    stream_of = {s.name: s for s in streams}
    frozen = next((s for s in streams if s.name.endswith(ZERO_SHOT)), None)
    header = ["seed", f"test R@{k}", f"test N@{k}", f"valid N@{k}"]
    header += [f"{COLD} R@{k}", f"{RARE} R@{k}", f"stream HR@{k}"]
    header += ["shares below zero-shot", "rounds (accepted)"]
    rows: list[list[str]] = []
    values: list[list[float]] = []
    for seed, name in seeds:
        model, run = model_of[name], stream_of[name]
        numbers = _numbers(model, run)
        values.append(numbers)
        taken = sum(1 for r in run.rounds if r.get("accepted"))
        below = "-" if frozen is None else "{} of {}".format(*shares_below(run, frozen))
        rows.append([str(seed), *(cell(v) for v in numbers), below, f"{len(run.rounds)} ({taken})"])
    spread = [
        f"{statistics.fmean(column):.4f} ± {statistics.stdev(column):.4f}"
        for column in zip(*values, strict=True)
    ]
    rows.append(["mean ± sd", *spread, "", ""])
    zero = next((m for m in models if m.name.endswith(ZERO_SHOT)), None)
    if zero is not None and frozen is not None:
        rows.append([cell(zero.name), *(cell(v) for v in _numbers(zero, frozen)), "", ""])
    first = model_of[seeds[0][1]].test_slices
    sizes = "; ".join(
        f"{name}: {first[name].users} users" for name in (COLD, RARE) if name in first
    )
    return [
        f"## Variance over {len(seeds)} seeds (@{k})",
        "",
        "The same setting and stream, trained with each seed (the seed draws the adapter's"
        " initial noise, the replay samples, the negatives and dropout); zero-shot ran"
        f" with the first. sd: sample standard deviation (n - 1). Slices of the test"
        f" targets ({sizes or 'not measured'}).",
        "",
        *table(header, rows),
    ]


def _numbers(model: ModelResult, run: StreamRun) -> list[float]:
    def recall(metrics: RankingMetrics | None) -> float:
        return metrics.recall if metrics is not None else float("nan")

    valid = model.valid.ndcg if model.valid is not None else float("nan")
    return [
        model.test.recall,
        model.test.ndcg,
        valid,
        recall(model.test_slices.get(COLD)),
        recall(model.test_slices.get(RARE)),
        run.prequential.overall.hr,
    ]
