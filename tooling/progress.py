"""What long-running commands show on the console: the rich progress bar (demo, eval)
and the test-metrics summary `streamrec eval` ends with."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tooling.evaluation import ModelResult


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def print_test_summary(console: Console, models: list[ModelResult], report: Path) -> None:
    """One row per model: test Recall/NDCG/MRR@10 and validation NDCG@10; then the report."""
    table = Table(title="test, leave-one-out, full ranking")
    for column in ("model", "Recall@10", "NDCG@10", "MRR@10", "valid NDCG@10"):
        table.add_column(column)
    for m in models:
        valid = f"{m.valid.ndcg:.4f}" if m.valid is not None else "—"
        table.add_row(
            m.name, f"{m.test.recall:.4f}", f"{m.test.ndcg:.4f}", f"{m.test.mrr:.4f}", valid
        )
    console.print(table)
    console.print(f"report: {report}")
