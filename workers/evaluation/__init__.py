"""Offline evaluation measured as the recommender-systems literature measures it.

Leave-one-out by time, full ranking over the catalog, the user's history excluded,
metrics @K over users with >= 3 events (``shared/data/README.md``), with RecBole's
semantics (see ``split.py``); deterministic baselines, prequential metrics for the live
stream, and markdown reports beside peers' numbers. Pure Python + numpy.
"""

from workers.evaluation.baselines import item_knn, most_popular, recbole_pop
from workers.evaluation.metrics import RankingMetrics, evaluate, rank_of
from workers.evaluation.online import (
    Observation,
    PrequentialPoint,
    PrequentialResult,
    Window,
    observations_from_stream,
    prequential,
)
from workers.evaluation.report import parse_peers, render
from workers.evaluation.split import Split, leave_one_out

__all__ = [
    "Observation",
    "PrequentialPoint",
    "PrequentialResult",
    "RankingMetrics",
    "Split",
    "Window",
    "evaluate",
    "item_knn",
    "leave_one_out",
    "most_popular",
    "observations_from_stream",
    "parse_peers",
    "prequential",
    "rank_of",
    "recbole_pop",
    "render",
]
