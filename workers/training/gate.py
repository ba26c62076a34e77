"""The version gate's score: prequential NDCG@K of an adapter on held-out samples.

    samples (history -> target), cached base vectors, adapter
    --project every cached item, fold each history (the recompute path)-->
    rank of the target among every cached item, the sample's history excluded
    --> mean of 1 / log2(rank + 2) over the samples (0 when the rank is >= K)

Pure torch + numpy, no grad. A sample whose target, or whole history, has no cached
vector is skipped (the same samples for every adapter scored on them). Both adapters
of a comparison rank over the same items: the trainer's cache, i.e. every item the
stream has referenced, including the held-out samples' own targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from workers.adapters import RecAdapter
from workers.training.buffer import Sample
from workers.training.catalog import BaseVectors

_CHUNK = 256  # samples scored per matrix product


def usable(samples: Sequence[Sample], cache: BaseVectors) -> list[Sample]:
    """The samples a gate can score: target and >= 1 history item cached."""
    return [s for s in samples if s.target in cache and any(i in cache for i in s.history)]


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
    return float(np.mean(gains))
