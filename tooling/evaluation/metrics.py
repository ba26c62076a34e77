"""Top-K ranking metrics with one held-out target per user (prequential ones: ``online.py``).

Full-ranking metrics (:func:`evaluate`) follow RecBole's definitions with one positive
per user (``recbole/evaluator/metrics.py``), averaged over the users in ``targets``:

* rank r: 0-based position of the target's first occurrence in the list cut to K;
* Recall@K = Hit@K = 1 if the target is in the top K, else 0;
* NDCG@K = 1 / log2(r + 2) on a hit (the ideal DCG of one positive is 1), else 0;
* MRR@K = 1 / (r + 1) on a hit, else 0;
* Precision@K = hits / K, K fixed even if a list is shorter (RecBole's lists always
  hold K items);
* F1@K: RecBole has no F1 metric. Ours is computed per user, 2PR/(P+R) (0 without a
  hit), then averaged, i.e. 2/(K+1) x Recall@K with one target. (The harmonic mean of
  the averaged P and R would give the same value here, as P = R/K for every user.)
* Coverage@K = distinct items in the evaluated users' top-K lists / ``catalog_size``
  (RecBole's ItemCoverage divides by its ``item_num``, which also counts its [PAD] id).

A user in ``targets`` but missing from ``ranked`` counts as a miss; users in ``ranked``
without a target are ignored (coverage included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RankingMetrics:
    """Averages over ``users`` evaluated users; ``coverage`` None without a catalog size."""

    k: int
    users: int
    recall: float
    ndcg: float
    mrr: float
    precision: float
    f1: float
    coverage: float | None = None

    @property
    def hit(self) -> float:
        """HR@K, equal to Recall@K with one target per user."""
        return self.recall


def rank_of(ranked: Sequence[str], target: str, k: int) -> int | None:
    """0-based position of ``target`` in ``ranked[:k]``, or None when absent."""
    for position, item in enumerate(ranked[:k]):
        if item == target:
            return position
    return None


def ndcg_of(rank: int | None) -> float:
    """NDCG@K of one target at 0-based ``rank`` in the top K (None: a miss, 0)."""
    return 0.0 if rank is None else 1.0 / math.log2(rank + 2)


def evaluate(
    ranked: Mapping[str, Sequence[str]],
    targets: Mapping[str, str],
    k: int = 10,
    catalog_size: int | None = None,
) -> RankingMetrics:
    """Metrics@``k`` of top lists ``ranked`` (user -> items, history already excluded)
    against ``targets`` (user -> held-out item). Inputs are not modified."""
    if k < 1:
        raise ValueError("k must be >= 1")
    hits = ndcg = mrr = 0.0
    recommended: set[str] = set()
    for user, target in targets.items():
        top = list(ranked.get(user, ()))[:k]
        recommended.update(top)
        rank = rank_of(top, target, k)
        if rank is not None:
            hits += 1.0
            ndcg += ndcg_of(rank)
            mrr += 1.0 / (rank + 1)
    n = len(targets)
    if n == 0:
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, 0.0, _coverage(recommended, catalog_size))
    recall = hits / n
    f1_hit = 2.0 / (k + 1)  # per-user F1 on a hit: P = 1/K, R = 1
    return RankingMetrics(
        k=k,
        users=n,
        recall=recall,
        ndcg=ndcg / n,
        mrr=mrr / n,
        precision=hits / (n * k),
        f1=f1_hit * recall,
        coverage=_coverage(recommended, catalog_size),
    )


def _coverage(recommended: set[str], catalog_size: int | None) -> float | None:
    if catalog_size is None:
        return None
    if catalog_size <= 0:
        raise ValueError("catalog_size must be > 0")
    return len(recommended) / catalog_size
