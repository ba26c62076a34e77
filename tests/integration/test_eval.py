"""`streamrec eval` end to end on small JSONL datasets cut from ML-100K: real broker,
worker, trainer and store; the report, plots and metrics it writes; a transfer run."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.cli import main
from tooling.datasets import load_ml100k

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = [
    "--set",
    "STREAMREC_TRAINING__TRAIN_EVERY_SAMPLES=200",
    "--set",
    "STREAMREC_TRAINING__TRAIN_EVERY_SECONDS=2",
    "--set",
    "STREAMREC_TRAINING__STEPS_PER_ROUND=5",
]


def write_jsonl(folder: Path, shared_data: Path, users: int, seed: int) -> dict[str, Any]:
    """A contract-format dataset: `users` random ML-100K users and the movies they saw."""
    data = load_ml100k(shared_data / "ml-100k")
    everyone = sorted({e["user_id"] for e in data.events})
    kept = set(random.Random(seed).sample(everyone, users))
    events = [e for e in data.events if e["user_id"] in kept]
    seen = {e["item_id"] for e in events}
    items = [i for i in data.items if i["item_id"] in seen]
    folder.mkdir(parents=True)
    for name, records in (("items.jsonl", items), ("events.jsonl", events)):
        with (folder / name).open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    return {"users": len(kept), "items": len(items), "events": len(events)}


def test_eval_writes_an_honest_report_and_transfers(tmp_path: Path, shared_data: Path) -> None:
    source, target = tmp_path / "movies-a", tmp_path / "movies-b"
    write_jsonl(source, shared_data, users=12, seed=1)
    sizes = write_jsonl(target, shared_data, users=12, seed=2)
    out = tmp_path / "results"
    runner = CliRunner()
    first = runner.invoke(main, ["eval", str(source), "--out", str(out), *FAST])
    assert first.exit_code == 0, first.output
    assert (out / "movies-a" / "adapter").is_dir(), "the online run's final adapter is kept"

    second = runner.invoke(
        main,
        [
            "eval",
            str(target),
            "--out",
            str(out),
            "--transfer-from",
            str(out / "movies-a"),
            "--no-zero-shot",
            *FAST,
        ],
    )
    assert second.exit_code == 0, second.output
    folder = out / "movies-b"
    report = (folder / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    models = metrics["models"]
    assert set(models) == {"streamrec online", "streamrec online from movies-a", "Pop", "ItemKNN"}
    for name, result in models.items():
        assert result["test"]["users"] == sizes["users"], name
        assert 0.0 <= result["test"]["ndcg"] <= result["test"]["recall"] <= 1.0
    runs = metrics["runs"]
    # Every round is logged; exactly the rounds the gate accepted were published.
    for run in runs.values():
        rounds = run["rounds"]
        assert rounds, "online training ran no round"
        accepted = [r["version"] for r in rounds if r["accepted"]]
        if accepted:  # older versions are pruned from disk: the newest is the last accepted
            assert max(run["versions"]) == max(accepted)
        for r in rounds:  # (no usable held-out sample: no scores, never accepted)
            scored = r["live_score"] is not None and r["candidate_score"] is not None
            # ... and never below the frozen model's score on the same samples (the floor)
            floor = r["frozen_score"] if r.get("frozen_score") is not None else -1.0
            wins = scored and r["candidate_score"] > r["live_score"]
            assert r["accepted"] == (wins and r["candidate_score"] >= floor), r
    # Every test list came from the model the stream left: the probes trained nothing.
    for run in runs.values():
        assert run["probe_versions"] == [max(run["versions"], default=0)], run["probe_versions"]
    # Paced to the trainer (the default): the stream was held for each due round, so no
    # round saw more than N = 200 new samples and one chunk's (N // 10 events). (From the
    # second logged round on: the first may follow rounds that trained nothing, every
    # sample held out for the gate, which the report's rounds leave out.)
    assert "| replay | paced to the trainer |" in report
    for run in runs.values():
        seen = [r["samples_seen"] for r in run["rounds"]]
        assert len(seen) >= 3, seen
        assert max(b - a for a, b in itertools.pairwise(seen)) <= 200 + 20, seen
    # The transfer run continued from movies-a's final version (versions only move
    # forward from it), it did not start again from scratch.
    source_runs = json.loads((out / "movies-a" / "metrics.json").read_text())["runs"]
    source_final = max(source_runs["streamrec online"]["versions"], default=0)
    transferred = runs["streamrec online from movies-a"]["versions"]
    assert min(transferred, default=source_final) >= source_final
    first_report = (out / "movies-a" / "report.md").read_text(encoding="utf-8")
    assert "Online learning vs the frozen model, and the gate" in first_report
    assert "training rounds" in first_report and "below zero-shot in" in first_report
    for needle in (
        "| streamrec online | this run |",
        "| ItemKNN | this run |",
        "Cross-scenario transfer",
        "movies-a",
        "prequential.png",
        "prequential-new-users.png",
        "latency.png",
        "vs-peers.png",
    ):
        assert needle in report, needle
    for png in ("prequential.png", "prequential-new-users.png", "latency.png", "vs-peers.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (folder / "work").exists(), "run directories are cleaned up"
