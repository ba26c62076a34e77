"""The version gate: prequential NDCG@K of adapters on held-out samples, and the verdict.

    samples (history -> target), cached base vectors, adapter
    --project every cached item, fold each history (the recompute path)-->
    rank of the target among every cached item, the sample's history excluded
    --> per sample 1 / log2(rank + 2) (0 when the rank is >= K)    `prequential_gains`

    gains of the live version and of the candidate on the same samples, the frozen
    model's mean --`goes_live`--> a paired non-inferiority test with a floor

Pure torch + numpy, no grad. A sample whose target, or whole history, has no cached
vector is skipped (the same samples for every adapter scored on them). Both adapters
of a comparison rank over the same items: the trainer's cache, i.e. every item the
stream has referenced, including the held-out samples' own targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from workers.adapters import RecAdapter
from workers.training.buffer import Sample
from workers.training.catalog import BaseVectors

_CHUNK = 256  # samples scored per matrix product


def usable(samples: Sequence[Sample], cache: BaseVectors) -> list[Sample]:
    """The samples a gate can score: target and >= 1 history item cached."""
    return [s for s in samples if s.target in cache and any(i in cache for i in s.history)]


def goes_live(
    live: npt.NDArray[np.float64],
    candidate: npt.NDArray[np.float64],
    floor: float,
    *,
    margin: float = 0.0,
    tolerance: float = 0.0,
) -> bool:
    """Whether a candidate replaces the live version, from both one's per-sample gains on
    the same held-out samples.

    Paired non-inferiority: the mean of ``candidate - live`` must exceed ``margin`` minus
    ``tolerance`` standard errors of that mean, so a candidate that only ties the live
    version within what these samples can tell apart still goes live (consecutive rounds
    often differ by less), while one measurably worse does not. And its mean must reach
    ``floor`` (the frozen model's mean on the same samples; NaN: no floor), so however the
    ties accumulate the served version never ranks the fresh samples below the frozen
    model. ``tolerance`` 0 is the strict rule: the candidate must beat the live version by
    ``margin``. No samples: no verdict but "keep the live version".
    """
    if len(candidate) == 0 or len(candidate) != len(live):
        return False
    diff = candidate - live
    spread = float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
    if not float(diff.mean()) > margin - tolerance * spread:
        return False
    return math.isnan(floor) or float(candidate.mean()) >= floor


def prequential_ndcg(
    adapter: RecAdapter,
    samples: Sequence[Sample],
    cache: BaseVectors,
    *,
    k: int = 10,
    max_history: int | None = None,
) -> float:
    """Mean NDCG@``k`` of ``samples`` (already `usable`) ranked by ``adapter``; NaN if none."""
    if not samples:
        return math.nan
    return float(prequential_gains(adapter, samples, cache, k=k, max_history=max_history).mean())


def prequential_gains(
    adapter: RecAdapter,
    samples: Sequence[Sample],
    cache: BaseVectors,
    *,
    k: int = 10,
    max_history: int | None = None,
) -> npt.NDArray[np.float64]:
    """NDCG@``k`` of each of ``samples`` (already `usable`) ranked by ``adapter``."""
    if not samples:
        return np.zeros(0)
    cut = max_history or adapter.config.max_history
    device = adapter.moe.weight.device
    base = torch.from_numpy(cache.matrix).to(device)
    rec = adapter.item_vectors(cache.ids, base, cache.scenarios)  # (n, out), eval, no grad
    gains: list[float] = []
    for start in range(0, len(samples), _CHUNK):
        part = samples[start : start + _CHUNK]
        rows = [[cache.rows[i] for i in s.history if i in cache][-cut:] for s in part]
        width = max(len(r) for r in rows)
        index = torch.zeros(len(part), width, dtype=torch.long)
        mask = torch.zeros(len(part), width, dtype=torch.bool)
        for n, r in enumerate(rows):
            index[n, width - len(r) :] = torch.tensor(r)
            mask[n, width - len(r) :] = True
        index, mask = index.to(device), mask.to(device)
        users = adapter.user_from_items(rec[index], mask)  # (b, out)
        with torch.no_grad():
            scores = users @ rec.T  # (b, n)
            scores.scatter_(1, index, torch.where(mask, -math.inf, scores.gather(1, index)))
            targets = torch.tensor([cache.rows[s.target] for s in part], device=device)
            target_scores = scores.gather(1, targets.unsqueeze(1))
            # A target also in its own history is -inf: ranked last (0) by every adapter.
            ranks = (scores > target_scores).sum(dim=1).cpu().numpy()
        gains.extend(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).tolist())
    return np.asarray(gains, dtype=np.float64)
