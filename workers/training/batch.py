"""Samples -> one training batch over the unique catalog rows it touches, and its loss.

samples, cached base vectors --build_batch--> Batch
    rows   (U,)     cache rows of every item the batch reads (projected once)
    history (b, L)  positions in ``rows`` (left-padded), mask (b, L)
    target (b,)     positions in ``rows``
    cands  (C,)     positions in ``rows``: the batch's targets + sampled negatives
    label  (b,)     position of each row's target in ``cands``
    seen   (b, C)   candidates in the row's own history (never its target), or None
    logq   (C,)     log of each candidate's expected count among a step's candidates
                    (`OnlineTrainer`), or None: subtracted from the logits (logQ)
--contrastive_loss--> InfoNCE: softmax over every candidate, duplicates merged, and
                      without the row's ``seen`` candidates (serving never ranks them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from workers.adapters import RecAdapter
from workers.training.buffer import Sample
from workers.training.catalog import BaseVectors

Index = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Batch:
    rows: Index
    history: Index
    mask: npt.NDArray[np.bool_]
    cands: Index
    label: Index
    seen: npt.NDArray[np.bool_] | None = None
    logq: npt.NDArray[np.float32] | None = None


def build_batch(
    samples: Sequence[Sample],
    cache: BaseVectors,
    max_history: int,
    negatives: Index,
    *,
    exclude_history: bool = False,
) -> Batch | None:
    """None when no sample is usable: its target, or every history item, not cached.

    ``exclude_history``: mark each row's history items among the candidates (``seen``),
    so the loss never asks a user's vector to rank below them what it bought before.
    """
    kept: list[tuple[list[int], int]] = []
    for sample in samples:
        target = cache.rows.get(sample.target)
        if target is None:
            continue
        hist = [r for i in sample.history if (r := cache.rows.get(i)) is not None]
        if hist:
            kept.append((hist[-max_history:], target))
    if not kept:
        return None
    width = max(len(h) for h, _ in kept)
    history = np.zeros((len(kept), width), dtype=np.int64)
    mask = np.zeros((len(kept), width), dtype=np.bool_)
    for n, (hist, _) in enumerate(kept):
        history[n, width - len(hist) :] = hist
        mask[n, width - len(hist) :] = True
    targets = np.array([t for _, t in kept], dtype=np.int64)
    rows, inverse = np.unique(
        np.concatenate([history.reshape(-1), targets, negatives]), return_inverse=True
    )
    inverse = inverse.reshape(-1)
    b, length = history.shape
    hist_pos = inverse[: b * length].reshape(b, length)
    target_pos = inverse[b * length : b * length + b]
    cands, label = np.unique(
        np.concatenate([target_pos, inverse[b * length + b :]]), return_inverse=True
    )
    label = label.reshape(-1)[:b]
    seen = _seen(hist_pos, mask, cands, label, len(rows)) if exclude_history else None
    return Batch(rows, hist_pos, mask, cands, label, seen)


def _seen(
    hist_pos: Index, mask: npt.NDArray[np.bool_], cands: Index, label: Index, n_rows: int
) -> npt.NDArray[np.bool_]:
    """(b, C): candidate c is in row r's (valid) history and is not r's target."""
    cand_of = np.full(n_rows, -1, dtype=np.int64)
    cand_of[cands] = np.arange(len(cands))
    hist_cand = np.where(mask, cand_of[hist_pos], -1)
    seen = np.zeros((len(label), len(cands)), dtype=np.bool_)
    r, c = np.nonzero(hist_cand >= 0)
    seen[r, hist_cand[r, c]] = True
    seen[np.arange(len(label)), label] = False
    return seen


def contrastive_loss(adapter: RecAdapter, batch: Batch, cache: BaseVectors) -> Tensor:
    """Mean InfoNCE of each row's target against every candidate (scalar, with grad).

    Registers the batch's items (ID residual rows) and scenarios with the adapter.
    """
    device = adapter.moe.weight.device  # the batch goes where the adapter lives (GPU or CPU)

    def tensor(array: npt.NDArray[Any]) -> Tensor:
        return torch.from_numpy(array).to(device)

    ids = [cache.ids[int(r)] for r in batch.rows]
    base = tensor(cache.matrix[batch.rows])
    scen = adapter.scenario_indices([cache.scenarios[int(r)] for r in batch.rows]).to(device)
    rec = adapter.project(base, scen, adapter.item_indices(ids).to(device))  # (U, out)
    history = rec[tensor(batch.history)]  # (b, L, out)
    users = adapter.aggregator(history, tensor(batch.mask))  # (b, out)
    logits = users @ rec[tensor(batch.cands)].T  # (b, C)
    logits = logits / adapter.config.temperature
    if batch.logq is not None:
        logits = logits - tensor(batch.logq)
    if batch.seen is not None:
        logits = logits.masked_fill(tensor(batch.seen), -math.inf)
    return F.cross_entropy(logits, tensor(batch.label))
