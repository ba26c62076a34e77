"""The sections of :func:`~tooling.evaluation.report.render_evaluation`, one function
each: plain data in, markdown lines out. A section without data says so in a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tooling.evaluation.latency import PERCENTILES_NOTE, latency_summary
from tooling.evaluation.markdown import MISSING, cell, table
from tooling.evaluation.metrics import RankingMetrics
from tooling.evaluation.online import PrequentialPoint
from tooling.evaluation.results import ModelResult, StreamRun, Transfer
from tooling.evaluation.slices import SliceSpec

MAX_WINDOW_ROWS = 30  # longer window series are left to the prequential plot
OURS = "this run"


def metric_names(k: int) -> list[str]:
    """Column names of a :class:`RankingMetrics` row."""
    return [f"{n}@{k}" for n in ("Recall", "NDCG", "MRR", "Precision", "F1", "Coverage")]


def metric_cells(m: RankingMetrics | None) -> list[str]:
    """Recall, NDCG, MRR, Precision, F1, Coverage cells; all ``MISSING`` when ``m`` is
    None or averages over no user (an empty slice has no value, not a zero)."""
    if m is None or m.users == 0:
        return [MISSING] * 6
    return [cell(v) for v in (m.recall, m.ndcg, m.mrr, m.precision, m.f1, m.coverage)]


def setup_section(
    dataset: str,
    seed: int,
    sizes: Sequence[tuple[str, int]],
    settings: Sequence[tuple[str, object]],
    k: int,
) -> list[str]:
    lines = [
        "## Setup",
        "",
        f"- dataset: {cell(dataset)}",
        f"- seed: {seed}",
        "- protocol: leave-one-out by time (ties in file order), full ranking over all items"
        f" with the user's history excluded, metrics @{k} over users with >= 3 events",
        "",
    ]
    if sizes:
        lines += table(["split", "size"], [[cell(n), str(v)] for n, v in sizes])
    else:
        lines.append("Split sizes were not recorded.")
    lines.append("")
    if settings:
        lines += table(["setting", "value"], [[cell(n), cell(str(v))] for n, v in settings])
    else:
        lines.append("No settings were recorded.")
    return lines


def model_tables(
    models: Sequence[ModelResult],
    k: int,
    peers: Mapping[str, Mapping[str, float]] | None,
    peer_notes: Mapping[str, str],
    peers_source: str,
) -> tuple[list[str], list[str]]:
    """(test lines, validation lines). The test table holds our models, then the peers'
    rows (Recall/NDCG/MRR only; the other cells ``MISSING``)."""
    header = ["model", "source", "users", *metric_names(k), "note"]
    rows = [[cell(m.name), OURS, str(m.test.users), *metric_cells(m.test), ""] for m in models]
    for name, values in (peers or {}).items():
        theirs = [values.get(f"{n}@{k}") for n in ("Recall", "NDCG", "MRR")]
        ours_only = [MISSING] * 3  # Precision, F1, Coverage: peers do not report them
        note = cell(peer_notes.get(name, ""))
        rows.append([cell(name), cell(peers_source), MISSING, *map(cell, theirs), *ours_only, note])
    test = table(header, rows) if rows else ["Not measured: no model results were given."]
    if not peers:
        test += ["", "No peer numbers were given for this dataset."]
    test += [
        "",
        f"Recall@{k} = HR@{k} (one target per user). F1@{k}: per-user F1 of Precision@{k} and"
        f" Recall@{k}, averaged over users (RecBole has no F1). Coverage@{k}: distinct items"
        f" in the top-{k} lists / catalog size. {MISSING}: not measured or not reported.",
    ]
    scored = [m for m in models if m.valid is not None]
    if not scored:
        return test, ["Not measured: no model was scored on the validation targets."]
    valid = table(
        ["model", "users", *metric_names(k)],
        [[cell(m.name), str(m.valid.users), *metric_cells(m.valid)] for m in scored if m.valid],
    )
    missing = [m.name for m in models if m.valid is None]
    if missing:
        valid += ["", "Not measured for: " + ", ".join(cell(n) for n in missing) + "."]
    return test, valid


def slices_section(models: Sequence[ModelResult], specs: Sequence[SliceSpec], k: int) -> list[str]:
    lines = [f"## Cold-start slices (@{k})", ""]
    if not models:
        return [*lines, "Not computed: no model results were given."]
    lines += [f"- **{cell(s.name)}**: {s.description}" for s in specs]
    for phase in ("test", "valid"):
        title = "Test targets" if phase == "test" else "Validation targets"
        per_model = [(m.name, m.test_slices if phase == "test" else m.valid_slices) for m in models]
        rows = [
            [cell(name), cell(slice_name), str(m.users), *metric_cells(m)]
            for name, slices in per_model
            for slice_name, m in slices.items()
        ]
        lines += ["", f"### {title}", ""]
        if not rows:
            lines.append(f"Not computed for the {title.lower()}.")
            continue
        lines += table(["model", "slice", "users", *metric_names(k)], rows)
        missing = [name for name, slices in per_model if not slices]
        if missing:
            lines += ["", "Not computed for: " + ", ".join(cell(n) for n in missing) + "."]
    return lines


def prequential_section(streams: Sequence[StreamRun], k: int) -> list[str]:
    lines = [f"## Prequential metrics on the stream (@{k})", ""]
    if not streams:
        return [*lines, "No stream replay was run: no prequential metrics."]
    lines += [
        "Each event is scored against the list served to its user after their previous"
        " event (test, then train). Stream time = events processed; a version's first"
        " list counts from the event after which it was served.",
        "",
    ]
    rows: list[list[str]] = []
    for run in streams:
        p = run.prequential
        for version, start in p.version_starts.items():
            point = p.by_version[version]
            first = str(start + 1)
            rows.append([cell(run.name), _version(version), first, *_point_cells(point)])
        rows.append([cell(run.name), "all", MISSING, *_point_cells(p.overall)])
    header = ["run", "model version", "first served (events processed)", "scored events"]
    lines += table([*header, f"HR@{k}", f"NDCG@{k}"], rows)
    for run in streams:
        lines += ["", *_windows(run)]
    return lines


def _point_cells(point: PrequentialPoint) -> list[str]:
    """scored events, HR, NDCG; the averages ``MISSING`` over no scored event."""
    if point.events == 0:
        return ["0", MISSING, MISSING]
    return [str(point.events), cell(point.hr), cell(point.ndcg)]


def _version(version: str) -> str:
    return cell(version) if version else "(unknown)"


def _windows(run: StreamRun) -> list[str]:
    p = run.prequential
    head = (
        f"**{cell(run.name)}**: {p.overall.events} scored events, {p.skipped} skipped"
        f" (no list served yet), {len(p.windows)} windows."
    )
    if not p.windows:
        return [head]
    if len(p.windows) > MAX_WINDOW_ROWS:
        return [head + f" More than {MAX_WINDOW_ROWS} windows: see the prequential plot."]
    rows = [
        [
            f"{w.events_from + 1}-{w.events_to}",
            *_point_cells(w.point),
            ", ".join(f"{_version(v)} ({n})" for v, n in w.versions),
        ]
        for w in p.windows
    ]
    header = ["events", "scored", f"HR@{p.k}", f"NDCG@{p.k}", "served by version (scored)"]
    return [head, "", *table(header, rows)]


def latency_section(streams: Sequence[StreamRun]) -> list[str]:
    lines = [f"## Serving latency (ms per recommendation, {PERCENTILES_NOTE})", ""]
    if not streams:
        return [*lines, "No stream replay was run: no latencies."]
    if not any(run.latencies_ms for run in streams):
        return [*lines, "No latencies were recorded."]
    rows: list[list[str]] = []
    for run in streams:
        if not run.latencies_ms:
            rows.append([cell(run.name), "0", *[MISSING] * 5])
            continue
        s = latency_summary(run.latencies_ms)
        values = (s.mean, s.p50, s.p95, s.p99, s.max)
        rows.append([cell(run.name), str(s.count), *(f"{v:.1f}" for v in values)])
    return lines + table(["run", "lists", "mean", "p50", "p95", "p99", "max"], rows)


def transfer_section(transfers: Sequence[Transfer], k: int) -> list[str]:
    lines = [f"## Cross-scenario transfer (@{k})", ""]
    if not transfers:
        return [*lines, "Cross-scenario transfer was not run."]
    rows: list[list[str]] = []
    for t in transfers:
        b, a = cell(t.target), cell(t.source)
        shared, scratch = t.from_shared, t.from_scratch
        rows.append([b, f"from {a}'s shared part", str(shared.users), *metric_cells(shared)])
        rows.append([b, "from scratch", str(scratch.users), *metric_cells(scratch)])
        rows.append([b, "difference (shared - scratch)", MISSING, *_differences(t)])
    return lines + table(["scenario B", "start", "users", *metric_names(k)], rows)


def _differences(t: Transfer) -> list[str]:
    a, b = t.from_shared, t.from_scratch
    if a.users == 0 or b.users == 0:
        return [MISSING] * 6
    pairs = [
        (a.recall, b.recall),
        (a.ndcg, b.ndcg),
        (a.mrr, b.mrr),
        (a.precision, b.precision),
        (a.f1, b.f1),
        (a.coverage, b.coverage),
    ]
    return [MISSING if x is None or y is None else f"{x - y:+.4f}" for x, y in pairs]


def plots_section(plots: Sequence[tuple[str, str]]) -> list[str]:
    lines = ["## Plots", ""]
    if not plots:
        return [*lines, "No plots were produced."]
    out: list[str] = []
    for caption, path in plots:
        target = f"<{path}>" if any(c in path for c in " ()<>") else path
        out += [f"![{cell(caption)}]({target})", ""]
    return lines + out[:-1]


def notes_section(notes: str) -> list[str]:
    return ["## Notes", "", notes.strip() or "No notes were given."]


# The report's notes on how `streamrec eval` replays a dataset (tooling.evaluate adds each
# run's served versions).
PIPELINE_NOTES = (
    "Validation lists are the ones the stream served after each user's last training "
    "event (the model of that moment); test lists are served after the validation "
    "probe, by the model the trainer had published when the stream ended (probes are "
    "sent with `learn: false`: they never train it).",
    "Every list is the pipeline's own ranking of the whole catalog (exact search); the "
    "user's items are removed from it in full before scoring (the pipeline itself "
    "excludes the most recent `history_size` items).",
    "Stream time is the dataset's time order. The worker consumes its partitions at "
    "their own pace, so one partition can be ahead of another: versions then appear "
    "out of order in stream time.",
    "Paced to the trainer (the default): the stream is held whenever a training round "
    "is due (every N samples) until that round is logged, so the rounds and the "
    "versions serving the stream do not depend on the machine's speed. A firehose run "
    "(`--firehose`) produces the whole stream at once and trains as often as the "
    "trainer keeps up.",
    "Latencies are from the event's produce time to its recommendation under the "
    "replay's backlog, i.e. mostly queueing delay; BENCHMARKS.md has the paced serving "
    "latency.",
)
