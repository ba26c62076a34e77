"""The eval report's run rows: versions published counts every version that went live,
not the few the adapters folder keeps on disk."""

from __future__ import annotations

from pathlib import Path

from tooling.evaluate import EvalOptions, _settings_rows
from tooling.replay import RunResult


def run(versions: list[int], accepted: list[bool]) -> RunResult:
    rounds = [{"round": n + 1, "accepted": a} for n, a in enumerate(accepted)]
    return RunResult("online", {}, 10.0, 1.0, versions, None, rounds)


def test_published_is_the_newest_version_number_not_the_files_kept() -> None:
    assert run([38, 39, 40], [True] * 40).published == 40
    assert run([], []).published == 0


def test_the_report_rows_count_versions_and_rounds() -> None:
    result = run([38, 39, 40], [True, False] * 20 + [True] * 20)
    rows = dict(_settings_rows(EvalOptions(data=Path("d")), {}, [result]))
    assert rows["online: versions published"] == 40
    assert rows["online: rounds (accepted)"] == "60 (40)"
