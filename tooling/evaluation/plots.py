"""PNG figures of an evaluation, drawn with matplotlib's Agg canvas (no display, no
pyplot state).

Each function takes plain data and an output path ending in ``.png`` (parent folders
are created), writes the figure there and returns the path as a :class:`Path`; bad
input raises ValueError with the reason, before anything is written.

* :func:`plot_prequential`: run name -> :class:`PrequentialResult`; HR@K and NDCG@K per
  window (solid) and cumulative (dashed) over stream time (events processed), one
  colour per run, a dotted vertical line where each new model version was first served.
* :func:`plot_latency`: run name -> ``latency_ms`` values; their CDFs, p50/p95/p99
  (nearest-rank percentiles, ``latency.py``) in the legend.
* :func:`plot_vs_peers`: model name -> test :class:`RankingMetrics` and the peers'
  rows (model -> ``"NDCG@10"``/``"Recall@10"`` -> value); NDCG@K and Recall@K bars.

matplotlib is imported when a function is called, so the rest of the package works
without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.evaluation.latency import PERCENTILES_NOTE, check_latencies, latency_summary
from tooling.evaluation.metrics import RankingMetrics
from tooling.evaluation.online import PrequentialResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PEERS_LABEL = "RecBole, PEERS.md"


def plot_prequential(runs: Mapping[str, PrequentialResult], path: str | Path) -> Path:
    """HR@K (top) and NDCG@K (bottom) over events processed, per run (see module doc)."""
    out = _png_path(path)
    if not runs:
        raise ValueError("plot_prequential: no runs given")
    ks = {r.k for r in runs.values()}
    if len(ks) != 1:
        raise ValueError(f"plot_prequential: runs have different k {sorted(ks)}")
    for name, result in runs.items():
        if not result.windows or not result.positions:
            raise ValueError(f"plot_prequential: run {name!r} has no scored observations")
    k = ks.pop()
    fig = _figure(8.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for index, (name, result) in enumerate(runs.items()):
        colour = f"C{index % 10}"
        x_windows = [w.events_to for w in result.windows]
        x_running = [p + 1 for p in result.positions]
        for ax, windowed, running in (
            (top, [w.point.hr for w in result.windows], result.running_hr),
            (bottom, [w.point.ndcg for w in result.windows], result.running_ndcg),
        ):
            ax.plot(x_windows, windowed, color=colour, marker="o", markersize=3, label=name)
            ax.plot(x_running, running, color=colour, linestyle="--", linewidth=1, alpha=0.6)
        for version, start in list(result.version_starts.items())[1:]:  # new versions only
            for ax in (top, bottom):
                ax.axvline(start + 1, color=colour, linestyle=":", linewidth=1)
            top.annotate(
                f"v{version}" if version.isdecimal() else version,
                (start + 1, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                color=colour,
                va="top",
                ha="right",
            )
    top.set_ylabel(f"HR@{k}")
    bottom.set_ylabel(f"NDCG@{k}")
    bottom.set_xlabel("events processed (stream time)")
    top.set_title(f"Prequential HR@{k} / NDCG@{k}: per window (solid), cumulative (dashed)")
    top.legend(fontsize=8, title="run; dotted: new model version", title_fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    return _save(fig, out)


def plot_latency(latencies_ms: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """CDF of each run's latencies (log x when they span two decades or more)."""
    out = _png_path(path)
    if not latencies_ms:
        raise ValueError("plot_latency: no runs given")
    for name, values in latencies_ms.items():
        check_latencies(values, f"plot_latency: run {name!r}")
    fig = _figure(7.0, 4.5)
    ax = fig.subplots()
    everything = [v for values in latencies_ms.values() for v in values]
    positive = [v for v in everything if v > 0]
    if len(positive) == len(everything) and max(everything) >= 100 * min(everything):
        ax.set_xscale("log")
    for index, (name, values) in enumerate(latencies_ms.items()):
        s = latency_summary(values)
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        label = f"{name}: p50 {s.p50:.1f} / p95 {s.p95:.1f} / p99 {s.p99:.1f} ms (n={s.count})"
        ax.step(xs, ys, where="post", color=f"C{index % 10}", label=label)
    for level in (0.5, 0.95, 0.99):
        ax.axhline(level, color="0.7", linestyle=":", linewidth=1)
    ax.set_xlabel("latency per recommendation (ms)")
    ax.set_ylabel("fraction of recommendations")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Serving latency (CDF; legend: {PERCENTILES_NOTE})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def plot_vs_peers(
    ours: Mapping[str, RankingMetrics],
    peers: Mapping[str, Mapping[str, float]] | None,
    path: str | Path,
    peers_label: str = PEERS_LABEL,
) -> Path:
    """Test NDCG@K (left) and Recall@K (right) bars: our models, then the peers'."""
    out = _png_path(path)
    if not ours:
        raise ValueError("plot_vs_peers: no models of ours given")
    ks = {m.k for m in ours.values()}
    if len(ks) != 1:
        raise ValueError(f"plot_vs_peers: our models have different k {sorted(ks)}")
    k = ks.pop()
    labels = list(ours)
    ndcg = [m.ndcg for m in ours.values()]
    recall = [m.recall for m in ours.values()]
    for name, row in (peers or {}).items():
        given = [row.get(f"NDCG@{k}"), row.get(f"Recall@{k}")]
        if any(v is None or not math.isfinite(v) for v in given):
            raise ValueError(f"plot_vs_peers: peer {name!r} lacks finite NDCG@{k} and Recall@{k}")
        labels.append(f"{name} ({peers_label})")
        ndcg.append(float(row[f"NDCG@{k}"]))
        recall.append(float(row[f"Recall@{k}"]))
    colours = ["C0"] * len(ours) + ["0.6"] * (len(labels) - len(ours))
    fig = _figure(10.0, 1.5 + 0.4 * len(labels))
    left, right = fig.subplots(1, 2, sharey=True)
    rows = list(range(len(labels)))
    for ax, values, title in ((left, ndcg, f"NDCG@{k}"), (right, recall, f"Recall@{k}")):
        bars = ax.barh(rows, values, color=colours)
        ax.bar_label(bars, fmt="%.4f", fontsize=7, padding=2)
        ax.set_title(f"test {title}")
        ax.set_xlim(0, max(values) * 1.3 if max(values) > 0 else 1.0)
        ax.grid(axis="x", alpha=0.3)
    left.set_yticks(rows, labels, fontsize=8)
    left.invert_yaxis()
    fig.suptitle(f"streamrec (blue) and peers (grey), full ranking @{k}", fontsize=10)
    return _save(fig, out)


def _png_path(path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"output path must end in .png, not {str(path)!r}")
    return out


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: the figure renders with Agg, no GUI backend
    return fig


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
