"""Offline evaluation measured as the recommender-systems literature measures it.

Leave-one-out by time, full ranking over the catalog, the user's history excluded,
metrics @K over users with >= 3 events (``shared/data/README.md``), with RecBole's
semantics (see ``split.py``); deterministic baselines, cold-start slices, prequential
metrics for the live stream, nearest-rank latency percentiles (``latency.py``, the one
percentile of the tooling), PNG plots and a markdown report beside peers' numbers.
Pure Python + numpy (matplotlib, the ``tooling`` extra, for ``plots.py`` only).

The report of one ``streamrec eval`` run, in four steps:

1. ``split = leave_one_out(events)``; per model, its top-K lists for ``split.test`` and
   ``split.valid`` -> ``score_model(name, split, test_lists, valid_lists)``;
2. per stream replay, ``prequential(observations_from_stream(events, served, versions))``
   and the served ``latency_ms`` -> ``StreamRun``; per transfer run, ``Transfer``;
3. ``plot_prequential`` / ``plot_latency`` / ``plot_vs_peers`` next to the report;
4. ``render_evaluation(Evaluation(...))`` with ``parse_peers`` / ``parse_peer_notes`` of
   ``shared/data/PEERS.md`` and ``split_sizes(split)``.
"""

from tooling.evaluation.baselines import item_knn, most_popular, recbole_pop
from tooling.evaluation.latency import (
    PERCENTILES_NOTE,
    LatencySummary,
    latency_summary,
    percentile,
)
from tooling.evaluation.metrics import RankingMetrics, evaluate, rank_of
from tooling.evaluation.online import (
    Observation,
    PrequentialPoint,
    PrequentialResult,
    Window,
    equal_windows,
    observations_from_stream,
    prequential,
)
from tooling.evaluation.paired import (
    PairedDifference,
    ndcg_gains,
    paired_difference,
)
from tooling.evaluation.plots import plot_latency, plot_prequential, plot_vs_peers
from tooling.evaluation.report import (
    Evaluation,
    parse_peer_notes,
    parse_peers,
    render,
    render_evaluation,
    split_sizes,
)
from tooling.evaluation.results import ModelResult, StreamRun, Transfer, score_model
from tooling.evaluation.slices import COLD_START_SLICES, SliceSpec, evaluate_slices, slice_targets
from tooling.evaluation.split import Split, leave_one_out

__all__ = [
    "COLD_START_SLICES",
    "PERCENTILES_NOTE",
    "Evaluation",
    "LatencySummary",
    "ModelResult",
    "Observation",
    "PairedDifference",
    "PrequentialPoint",
    "PrequentialResult",
    "RankingMetrics",
    "SliceSpec",
    "Split",
    "StreamRun",
    "Transfer",
    "Window",
    "equal_windows",
    "evaluate",
    "evaluate_slices",
    "item_knn",
    "latency_summary",
    "leave_one_out",
    "most_popular",
    "ndcg_gains",
    "observations_from_stream",
    "paired_difference",
    "parse_peer_notes",
    "parse_peers",
    "percentile",
    "plot_latency",
    "plot_prequential",
    "plot_vs_peers",
    "prequential",
    "rank_of",
    "recbole_pop",
    "render",
    "render_evaluation",
    "score_model",
    "slice_targets",
    "split_sizes",
]
