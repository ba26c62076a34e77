"""Offline evaluation measured as the recommender-systems literature measures it.

Leave-one-out by time, full ranking over the catalog, the user's history excluded,
metrics @K over users with >= 3 events (``shared/data/README.md``), with RecBole's
semantics (see ``split.py``); deterministic baselines, cold-start slices, prequential
metrics for the live stream, latency percentiles, PNG plots and a markdown report
beside peers' numbers. Pure Python + numpy (matplotlib for ``plots.py`` only).

The report of one ``streamrec eval`` run, in four steps:

1. ``split = leave_one_out(events)``; per model, its top-K lists for ``split.test`` and
   ``split.valid`` -> ``score_model(name, split, test_lists, valid_lists)``;
2. per stream replay, ``prequential(observations_from_stream(events, served, versions))``
   and the served ``latency_ms`` -> ``StreamRun``; per transfer run, ``Transfer``;
3. ``plot_prequential`` / ``plot_latency`` / ``plot_vs_peers`` next to the report;
4. ``render_evaluation(Evaluation(...))`` with ``parse_peers`` / ``parse_peer_notes`` of
   ``shared/data/PEERS.md`` and ``split_sizes(split)``.
"""

from workers.evaluation.baselines import item_knn, most_popular, recbole_pop
from workers.evaluation.latency import LatencySummary, latency_summary
from workers.evaluation.metrics import RankingMetrics, evaluate, rank_of
from workers.evaluation.online import (
    Observation,
    PrequentialPoint,
    PrequentialResult,
    Window,
    observations_from_stream,
    prequential,
)
from workers.evaluation.plots import plot_latency, plot_prequential, plot_vs_peers
from workers.evaluation.report import (
    Evaluation,
    parse_peer_notes,
    parse_peers,
    render,
    render_evaluation,
    split_sizes,
)
from workers.evaluation.results import ModelResult, StreamRun, Transfer, score_model
from workers.evaluation.slices import COLD_START_SLICES, SliceSpec, evaluate_slices, slice_targets
from workers.evaluation.split import Split, leave_one_out

__all__ = [
    "COLD_START_SLICES",
    "Evaluation",
    "LatencySummary",
    "ModelResult",
    "Observation",
    "PrequentialPoint",
    "PrequentialResult",
    "RankingMetrics",
    "SliceSpec",
    "Split",
    "StreamRun",
    "Transfer",
    "Window",
    "evaluate",
    "evaluate_slices",
    "item_knn",
    "latency_summary",
    "leave_one_out",
    "most_popular",
    "observations_from_stream",
    "parse_peer_notes",
    "parse_peers",
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
