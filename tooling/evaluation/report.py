"""Markdown reports of evaluation results, with peers' published numbers beside them.

Two entry points, both pure (nothing read from or written to disk here):

* :func:`render`: one table, our model name -> :class:`RankingMetrics` beside peers'
  numbers for the same model names;
* :func:`render_evaluation`: the whole report of one ``streamrec eval`` run from an
  :class:`Evaluation` (setup, test and validation tables with the peers' rows in the
  same test table, cold-start slices, prequential metrics per model version, latency
  percentiles, cross-scenario transfer, links to the plots, notes). A part that was
  not measured renders as a sentence saying so, never as an empty table. The same
  :class:`Evaluation` always renders the same text.

Peers' numbers come from the markdown of ``shared/data/PEERS.md``: :func:`parse_peers`
(dataset -> model -> column -> value) and :func:`parse_peer_notes` (dataset -> model ->
the row's free-text ``note``, e.g. "not converged").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from tooling.evaluation.latency import check_latencies
from tooling.evaluation.learning_section import learning_section
from tooling.evaluation.markdown import cell
from tooling.evaluation.metrics import RankingMetrics
from tooling.evaluation.report_sections import (
    latency_section,
    model_tables,
    notes_section,
    plots_section,
    prequential_section,
    setup_section,
    slices_section,
    transfer_section,
)
from tooling.evaluation.results import ModelResult, StreamRun, Transfer
from tooling.evaluation.seeds_section import seeds_section
from tooling.evaluation.slices import COLD_START_SLICES, SliceSpec
from tooling.evaluation.split import Split

Peers = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation run measured, for :func:`render_evaluation`.

    ``split_sizes``: (name, count) rows, e.g. from :func:`split_sizes`. ``settings``:
    (name, value) rows, values shown with ``str``. ``models``: offline results in display
    order. ``peers``: model -> column (``"Recall@10"``, ...) -> value, one dataset's
    section of :func:`parse_peers`, None when there is none; ``peer_notes``: model ->
    note (:func:`parse_peer_notes`). ``slices``: the slice rules the models' slice
    metrics were computed with (their definitions are printed). ``streams``: stream
    replays; ``transfers``: cross-scenario runs; ``plots``: (caption, path relative to
    the report); ``seeds``: (seed, run name) of one setting trained with several seeds,
    each name both a model and a stream run. Every metric must be @``k``. Raises
    ValueError on inconsistent input.
    """

    dataset: str
    seed: int
    split_sizes: Sequence[tuple[str, int]]
    settings: Sequence[tuple[str, object]]
    models: Sequence[ModelResult] = ()
    k: int = 10
    peers: Mapping[str, Mapping[str, float]] | None = None
    peer_notes: Mapping[str, str] = field(default_factory=dict)
    peers_source: str = "RecBole 1.2.1 (PEERS.md)"
    slices: Sequence[SliceSpec] = COLD_START_SLICES
    streams: Sequence[StreamRun] = ()
    transfers: Sequence[Transfer] = ()
    plots: Sequence[tuple[str, str]] = ()
    notes: str = ""
    seeds: Sequence[tuple[int, str]] = ()

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")
        for what, names in (
            ("model", [m.name for m in self.models]),
            ("stream run", [s.name for s in self.streams]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{what} names must be distinct: {names}")
        for where, metrics in self._all_metrics():
            if metrics.k != self.k:
                raise ValueError(f"{where} is @{metrics.k}, the report is @{self.k}")
        for run in self.streams:
            if run.prequential.k != self.k:
                raise ValueError(f"stream {run.name!r} is @{run.prequential.k}, not @{self.k}")
            if run.latencies_ms:
                check_latencies(run.latencies_ms, f"stream {run.name!r}")
        known = {spec.name for spec in self.slices}
        for m in self.models:
            unknown = sorted((set(m.test_slices) | set(m.valid_slices)) - known)
            if unknown:
                raise ValueError(f"model {m.name!r}: slices {unknown} not among Evaluation.slices")
        streams = {s.name for s in self.streams}
        for seed, name in self.seeds:
            if name not in {m.name for m in self.models} or name not in streams:
                raise ValueError(f"seed {seed}: {name!r} must be a model and a stream run")
        for caption, path in self.plots:
            if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
                raise ValueError(f"plot {caption!r}: path {path!r} must be relative")

    def _all_metrics(self) -> Iterator[tuple[str, RankingMetrics]]:
        for m in self.models:
            yield f"model {m.name!r} test", m.test
            if m.valid is not None:
                yield f"model {m.name!r} valid", m.valid
            for phase, slices in (("test", m.test_slices), ("valid", m.valid_slices)):
                for name, metrics in slices.items():
                    yield f"model {m.name!r} {phase} slice {name!r}", metrics
        for t in self.transfers:
            yield f"transfer {t.source}->{t.target}", t.from_shared
            yield f"transfer {t.source}->{t.target}", t.from_scratch


def render_evaluation(evaluation: Evaluation) -> str:
    """The markdown report of ``evaluation`` (see the module docstring)."""
    e = evaluation
    test, valid = model_tables(e.models, e.k, e.peers, e.peer_notes, e.peers_source)
    parts = [
        [f"# streamrec evaluation: {cell(e.dataset)}"],
        setup_section(e.dataset, e.seed, e.split_sizes, e.settings, e.k),
        [f"## Test targets (full ranking @{e.k})", "", *test],
        [f"## Validation targets (full ranking @{e.k})", "", *valid],
        slices_section(e.models, e.slices, e.k),
        prequential_section(e.streams, e.k),
        learning_section(e.streams, e.k),
        seeds_section(e.seeds, e.models, e.streams, e.k),
        latency_section(e.streams),
        transfer_section(e.transfers, e.k),
        plots_section(e.plots),
        notes_section(e.notes),
    ]
    return "\n\n".join("\n".join(lines) for lines in parts if lines) + "\n"


def split_sizes(split: Split) -> tuple[tuple[str, int], ...]:
    """(name, count) rows describing ``split`` for :attr:`Evaluation.split_sizes`."""
    users = set(split.user_train_counts) | set(split.test) | set(split.valid)
    return (
        ("users", len(users)),
        ("items", len(split.items)),
        ("training events", len(split.train)),
        ("validation targets", len(split.valid)),
        ("test targets", len(split.test)),
    )


def _peer_tables(markdown: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(dataset, model, column -> cell text) for every row of every markdown table whose
    header's first cell names a dataset (the text before `` (``)."""
    dataset: str | None = None
    columns: list[str] = []
    for line in markdown.splitlines():
        text = line.strip()
        if not text.startswith("|"):
            dataset = None
            continue
        cells = [c.strip() for c in text.strip("|").split("|")]
        if dataset is None:
            dataset = cells[0].split(" (")[0].strip()
            columns = cells[1:]
            yield dataset, "", {}  # the table exists even if it has no rows
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the |---|---| row
        yield dataset, cells[0], dict(zip(columns, cells[1:], strict=False))


def parse_peers(markdown: str) -> Peers:
    """Every markdown table whose header's first cell names a dataset, e.g.
    ``| ML-100K (943 users, ...) | Recall@10 | ...``: dataset (the text before `` (``)
    -> model (first cell) -> column -> value, for the cells that parse as numbers."""
    peers: Peers = {}
    for dataset, model, row in _peer_tables(markdown):
        section = peers.setdefault(dataset, {})
        if not model:
            continue
        values: dict[str, float] = {}
        for column, text in row.items():
            try:
                values[column] = float(text.replace(",", ""))
            except ValueError:
                continue
        section[model] = values
    return peers


def parse_peer_notes(markdown: str, column: str = "note") -> dict[str, dict[str, str]]:
    """dataset -> model -> the non-empty text of the row's ``column`` cell, for the
    tables :func:`parse_peers` reads."""
    notes: dict[str, dict[str, str]] = {}
    for dataset, model, row in _peer_tables(markdown):
        section = notes.setdefault(dataset, {})
        if model and row.get(column):
            section[model] = row[column]
    return notes


def render(
    results: Mapping[str, RankingMetrics],
    peers: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """One row per model: our Recall/NDCG/MRR/Precision/F1/Coverage @K and, where
    ``peers`` (model -> column, e.g. ``"Recall@10"``; matched case-insensitively) has
    the model, the peer's Recall/NDCG/MRR @K beside them. Peer-only models follow."""
    peer_rows = {name.lower(): (name, row) for name, row in (peers or {}).items()}
    k = next(iter(results.values())).k if results else 10
    names = ("Recall", "NDCG", "MRR")
    header = [
        "model",
        *(f"{n}@{k}" for n in (*names, "Precision", "F1", "Coverage")),
        *(f"peer {n}@{k}" for n in names),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, m in results.items():
        _, peer = peer_rows.pop(model.lower(), (model, {}))
        ours = [m.recall, m.ndcg, m.mrr, m.precision, m.f1, m.coverage]
        theirs = [peer.get(f"{n}@{k}") for n in names]
        lines.append(_row(model, [*ours, *theirs]))
    for name, peer in peer_rows.values():
        blank: list[float | None] = [None] * 6
        lines.append(_row(name, blank + [peer.get(f"{n}@{k}") for n in names]))
    return "\n".join(lines) + "\n"


def _row(name: str, values: Sequence[float | None]) -> str:
    cells = ["" if v is None else f"{v:.4f}" for v in values]
    return "| " + " | ".join([name, *cells]) + " |"
