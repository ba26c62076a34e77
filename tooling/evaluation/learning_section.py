"""The report's "online learning vs the frozen model" section: does training ever serve
worse than zero-shot, and what did the gate decide, over stream time.

In: the stream replays (`StreamRun`: the whole-stream zero-shot one, named "...
zero-shot", and the trained ones, those with their trainer's ``rounds``). Out:
markdown lines: per trained run, ten equal shares of the scored events with its HR@K
/ NDCG@K beside zero-shot's over the same stream positions, and the rounds the gate
accepted / rejected in that share (placed by the samples the trainer had seen, which
trail the stream position by the users' first events); then the decisions' totals. Pure: no I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from tooling.evaluation.markdown import cell, table
from tooling.evaluation.online import PrequentialPoint, equal_windows, span
from tooling.evaluation.results import StreamRun

WINDOWS = 10
ZERO_SHOT = "zero-shot"


def learning_section(streams: Sequence[StreamRun], k: int) -> list[str]:
    lines = [f"## Online learning vs the frozen model, and the gate (@{k})", ""]
    # The whole-stream replays: the zero-shot one by name, the trained ones by their rounds.
    frozen = next((s for s in streams if s.name.endswith(ZERO_SHOT)), None)
    trained = [s for s in streams if s.rounds and s.prequential.positions]
    if frozen is None or not trained:
        return [*lines, "Needs a zero-shot replay and a trained one on the same stream."]
    lines += [
        "Ten equal shares of each trained run's scored events; zero-shot scored over the"
        " same stream positions. Gate: rounds whose candidate went live (accepted) or was"
        " turned down (rejected), placed by the samples the trainer had seen.",
        "",
    ]
    for run in trained:
        rows = []
        below = 0
        for start, end, point in equal_windows(run.prequential, WINDOWS):
            base = _between(frozen, start, end)
            accepted, rejected = _decisions(run.rounds, start, end)
            diff = point.hr - base.hr if base.events else None
            below += diff is not None and diff < 0
            rows.append(
                [
                    f"{start + 1}-{end}",
                    cell(point.hr),
                    cell(base.hr) if base.events else "-",
                    f"{diff:+.4f}" if diff is not None else "-",
                    cell(point.ndcg),
                    cell(base.ndcg) if base.events else "-",
                    str(accepted),
                    str(rejected),
                ]
            )
        header = ["events", f"HR@{k}", f"zero-shot HR@{k}", "difference", f"NDCG@{k}"]
        header += [f"zero-shot NDCG@{k}", "accepted", "rejected"]
        total = len(run.rounds)
        taken = sum(1 for r in run.rounds if r.get("accepted"))
        floored = sum(1 for r in run.rounds if not r.get("accepted") and _below_floor(r))
        lines += [
            f"**{cell(run.name)}**: {total} training rounds, {taken} accepted, "
            f"{total - taken} rejected ({floored} of them below the frozen model on the "
            f"held-out samples); below zero-shot in {below} of {len(rows)} shares.",
            "",
            *table(header, rows),
            "",
        ]
    return lines[:-1]


def shares_below(run: StreamRun, frozen: StreamRun) -> tuple[int, int]:
    """(shares of ``run``'s ten where its HR is below ``frozen``'s at the same stream
    positions, shares compared)."""
    below = compared = 0
    for start, end, point in equal_windows(run.prequential, WINDOWS):
        base = _between(frozen, start, end)
        if base.events:
            compared += 1
            below += point.hr < base.hr
    return below, compared


def _between(run: StreamRun, start: int, end: int) -> PrequentialPoint:
    """HR/NDCG of ``run``'s scored observations at stream positions [start, end)."""
    positions = run.prequential.positions
    return span(run.prequential, bisect_left(positions, start), bisect_left(positions, end))


def _decisions(rounds: Sequence[Mapping[str, Any]], start: int, end: int) -> tuple[int, int]:
    inside = [r for r in rounds if start <= int(r.get("samples_seen") or 0) < end]
    accepted = sum(1 for r in inside if r.get("accepted"))
    return accepted, len(inside) - accepted


def _below_floor(entry: Mapping[str, Any]) -> bool:
    candidate, frozen = entry.get("candidate_score"), entry.get("frozen_score")
    return (
        isinstance(candidate, int | float)
        and isinstance(frozen, int | float)
        and candidate < frozen
    )
