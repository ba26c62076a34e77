"""A user's recent adapted item vectors -> one user vector, in batch and incrementally.

Two paths over the same parameters:

* batch (``forward``): (b, L, d) items + (b, L) validity mask -> (b, d) unit vectors,
  reading only the ``max_history`` most recent valid items (the recompute path, used
  for training and when the adapter version changes);
* incremental (``initial_state``/``step``/``readout``): a fixed-size float state per
  user, (b, state_size), updated in O(d) per event (the serving path). The all-zero
  state is the empty history, so a state can live in a table as a plain float vector.

What is exact. For the same sequence of events, ``readout`` of the folded state equals
``forward`` (up to float rounding) for every kind, as long as the sequence is no longer
than ``max_history``; the state is never windowed, so beyond that the two differ by
the events that left the window:

* ``mean``: state = (sum, count); readout = unit(sum) = unit(masked mean). No parameters.
* ``attention``: weights ``softmax_i(u . x_i - lam * age_i)`` with a learned query ``u``
  and a learned recency slope ``lam >= 0`` (``age`` = events since, 0 for the newest).
  Because the recency term is linear in age, every old term decays by ``exp(-lam)`` per
  event: state = (num, den, shift) with ``num = sum_i exp(s_i - shift) x_i``, the
  log-sum-exp shift keeping it finite. Beyond the window the dropped events weigh at
  most ``exp(-lam * max_history)`` relative to the newest. At init ``u = 0`` and
  ``exp(-lam) = recency``: exactly the frozen recommender's decayed fold.
* ``gru``: state = the GRU hidden state; readout = unit(h). Identical arithmetic on both
  paths. At init the GRU is ``h <- recency * h + (1 - recency) * tanh(x)``, close to
  the same decayed fold.

States depend on the parameters: after a new adapter version, recompute them from the
stored history (the architecture does exactly that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.adapters.config import AGGREGATORS


def recency_ages(mask: Tensor) -> Tensor:
    """(b, L) bool validity -> (b, L) long: valid items after each position (0 = newest)."""
    m = mask.long()
    return m.flip(-1).cumsum(-1).flip(-1) - m


class SequenceAggregator(nn.Module):
    """Masked mean | recency-biased learned-query attention | GRU over adapted items."""

    def __init__(self, dim: int, kind: str, *, max_history: int, recency: float) -> None:
        super().__init__()
        if kind not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {kind!r}")
        self.dim = dim
        self.kind = kind
        self.max_history = max_history
        self.query: nn.Parameter | None = None
        self.decay_raw: nn.Parameter | None = None
        self.gru: nn.GRUCell | None = None
        lam = -math.log(recency)  # per-event log-decay
        if kind == "attention":
            self.query = nn.Parameter(torch.zeros(dim))
            # lam = softplus(decay_raw) >= 0; inverse softplus of lam:
            self.decay_raw = nn.Parameter(torch.tensor(lam + math.log(-math.expm1(-lam))))
        elif kind == "gru":
            self.gru = nn.GRUCell(dim, dim)
            self._init_gru(recency)

    @torch.no_grad()
    def _init_gru(self, recency: float) -> None:
        assert self.gru is not None
        d = self.dim
        # torch gate order is (reset, update, new). Update gate z = recency for every
        # input, candidate n = tanh(x): h' = (1 - z) * n + z * h ~ the decayed fold.
        for p in self.gru.parameters():
            p.zero_()
        self.gru.weight_ih[2 * d :].copy_(torch.eye(d))
        self.gru.bias_ih[d : 2 * d].fill_(math.log(recency / (1.0 - recency)))

    @property
    def decay(self) -> Tensor:
        """lam >= 0, the attention's per-event log-decay (0-dim tensor)."""
        assert self.decay_raw is not None
        return F.softplus(self.decay_raw)

    @property
    def state_size(self) -> int:
        """Floats per user in the incremental state."""
        return {"mean": self.dim + 1, "attention": self.dim + 2, "gru": self.dim}[self.kind]

    def forward(self, items: Tensor, mask: Tensor | None = None) -> Tensor:
        """(b, L, d) items, (b, L) bool mask (True = real item) -> (b, d) unit vectors.

        Items at masked positions are never read (they may hold anything, NaN included).
        A row with no valid item gives the zero vector.
        """
        b, length, _ = items.shape
        if mask is None:
            mask = torch.ones(b, length, dtype=torch.bool, device=items.device)
        mask = mask.bool()
        ages = recency_ages(mask)
        window = mask & (ages < self.max_history)
        x = torch.where(window.unsqueeze(-1), items, torch.zeros_like(items))
        if self.kind == "mean":
            out = x.sum(dim=1)
        elif self.kind == "attention":
            assert self.query is not None
            logits = x @ self.query - self.decay * ages.to(x.dtype)
            logits = logits.masked_fill(~window, torch.finfo(x.dtype).min)
            weights = torch.softmax(logits, dim=-1) * window.to(x.dtype)
            out = (weights.unsqueeze(-1) * x).sum(dim=1)
        else:
            h = x.new_zeros(b, self.dim)
            for t in range(length):
                h = self._gru_step(h, x[:, t], window[:, t])
            out = h
        return F.normalize(out, dim=-1)

    def _gru_step(self, h: Tensor, x: Tensor, valid: Tensor) -> Tensor:
        assert self.gru is not None
        new: Tensor = self.gru(x, h)
        return torch.where(valid.unsqueeze(-1), new, h)

    def initial_state(self, batch: int = 1, device: torch.device | None = None) -> Tensor:
        """(batch, state_size) zeros: the empty history."""
        return torch.zeros(batch, self.state_size, device=device)

    def step(self, state: Tensor, item: Tensor, weight: Tensor | None = None) -> Tensor:
        """(b, state_size) state, (b, d) adapted item, (b,) positive weights (None = 1)
        -> new state; O(d) per row. Pure: ``state`` is not modified.

        A weight ``w`` counts the item ``w`` times as much as a weight of 1: ``mean`` adds
        ``w * item`` and ``w`` to the count, ``attention`` multiplies the item's attention
        weight by ``w`` (adds ``log w`` to its score), ``gru`` reads ``w * item``.
        """
        d = self.dim
        w = torch.ones_like(item[:, :1]) if weight is None else weight.reshape(-1, 1).to(item)
        if self.kind == "mean":
            return torch.cat([state[:, :d] + w * item, state[:, d:] + w], dim=-1)
        if self.kind == "attention":
            assert self.query is not None
            num, den, shift = state[:, :d], state[:, d : d + 1], state[:, d + 1 :]
            score = (item @ self.query).unsqueeze(-1) + torch.log(w)  # (b, 1)
            # The empty state (num = den = 0) has shift 0: its factor multiplies zeros.
            new_shift = torch.maximum(shift - self.decay, score)
            old = torch.exp(shift - self.decay - new_shift)  # <= 1
            cur = torch.exp(score - new_shift)  # <= 1
            return torch.cat([old * num + cur * item, old * den + cur, new_shift], dim=-1)
        return self._gru_step(state, w * item, torch.ones_like(item[:, 0], dtype=torch.bool))

    def fold(self, items: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        """(b, L, d) adapted items, (b, L) weights >= 0, (b, L) bool mask -> the (b,
        state_size) states that `step` gives from the empty state over each row's valid
        items in order (masked positions are never read: they may hold anything).

        ``mean`` and ``attention`` in closed form, one batched pass whatever L (the
        recompute after a version change): ``mean`` sums; ``attention`` uses that the
        stepped shift after n items is ``max(-lam * n, max_t(s_t - lam * age_t))``, so
        every item's factor is ``exp(s_t - lam * age_t - shift)``; equal to stepping up to
        float rounding (the factors in float64). ``gru`` steps (it has no closed form).
        """
        mask = mask.bool()
        if bool(mask.all()):
            x, w = items, weights
        else:
            x = torch.where(mask.unsqueeze(-1), items, torch.zeros_like(items))
            w = torch.where(mask, weights, torch.zeros_like(weights))
        if self.kind == "gru":
            h = self.initial_state(items.shape[0], items.device)
            for t in range(items.shape[1]):
                h = self._gru_step(h, w[:, t : t + 1] * x[:, t], mask[:, t])
            return h
        if self.kind == "mean":
            total = (w.unsqueeze(1) @ x).squeeze(1)
            return torch.cat([total, w.sum(dim=1, keepdim=True)], dim=-1)
        assert self.query is not None
        # The (b, L) scores in float64; the (b, L, d) items read twice, in their dtype.
        lam = self.decay.double()
        scores = (x @ self.query).double() + torch.log(w.double())  # -inf: w = 0 or masked
        logits = (scores - lam * recency_ages(mask).double()).masked_fill(~mask, -math.inf)
        count = mask.sum(dim=1, keepdim=True).double()
        shift = torch.maximum(-lam * count, logits.max(dim=1, keepdim=True).values)
        factor = torch.exp(logits - shift)  # 0 at masked positions
        num = (factor.to(x.dtype).unsqueeze(1) @ x).squeeze(1)
        den = factor.sum(dim=1, keepdim=True).to(x.dtype)
        return torch.cat([num, den, shift.to(x.dtype)], dim=-1)

    def readout(self, state: Tensor) -> Tensor:
        """(b, state_size) -> (b, d) unit user vectors (zero for the empty state)."""
        return F.normalize(state[:, : self.dim], dim=-1)

    def serving_step(self) -> ServingStep | None:
        """`step` of the current parameters in numpy (None for ``gru``), for serving."""
        if self.kind == "gru":
            return None
        query = None if self.query is None else self.query.detach().cpu().numpy()
        decay = 0.0 if self.decay_raw is None else float(self.decay.detach())
        return ServingStep(self.kind, self.dim, query, decay)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind!r}, max_history={self.max_history}"


Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ServingStep:
    """`SequenceAggregator.step` of ``mean`` and ``attention`` as float32 numpy, with
    the parameters frozen: a server folds a few events per call, where torch's per-call
    overhead was most of the cost (BENCHMARKS.md, session 11). `__call__` is the same
    arithmetic in the same order as the torch step; `scan` gives the state after each of
    a user's events at once (a micro-batch's events, BENCHMARKS.md, session 20)."""

    kind: str
    dim: int
    query: Floats | None  # attention's learned query
    decay: float  # attention's per-event log-decay lam

    def __call__(self, state: Floats, item: Floats, weight: Floats) -> Floats:
        """(b, state_size), (b, d), (b,) weights >= 0 -> the new states."""
        d = self.dim
        w = np.asarray(weight, dtype=np.float32).reshape(-1, 1)
        if self.kind == "mean":
            return np.concatenate([state[:, :d] + w * item, state[:, d:] + w], axis=-1)
        assert self.query is not None
        num, den, shift = state[:, :d], state[:, d : d + 1], state[:, d + 1 :]
        with np.errstate(divide="ignore"):  # a weight of 0: log 0 = -inf, the item adds 0
            score = (item @ self.query)[:, None] + np.log(w)
        decay = np.float32(self.decay)
        new_shift = np.maximum(shift - decay, score)
        old = np.exp(shift - decay - new_shift)
        cur = np.exp(score - new_shift)
        out: Floats = np.concatenate([old * num + cur * item, old * den + cur, new_shift], axis=-1)
        return out

    def scan(self, state: Floats, items: Floats, weights: Floats) -> Floats:
        """(b, state_size) states, (b, L, d) items and (b, L) weights >= 0 -> the (b, L,
        state_size) states after each position: `__call__` position by
        position in one pass (a user's consecutive events in a micro-batch), equal up to
        float rounding. ``attention`` as `SequenceAggregator.fold` from a given state:
        after j + 1 items the shift is ``max(shift0 - lam (j + 1), max_i(s_i - lam (j -
        i)))`` and every term's factor is its exponent less that shift (float64), so the
        cost is L^2 d per row: callers scan a few dozen positions at a time."""
        d = self.dim
        w = np.asarray(weights, dtype=np.float32)
        if self.kind == "mean":
            num = state[:, None, :d] + np.cumsum(w[..., None] * items, axis=1)
            den = state[:, None, d:] + np.cumsum(w, axis=1)[..., None]
            out: Floats = np.concatenate([num, den], axis=-1).astype(np.float32)
            return out
        assert self.query is not None
        length = items.shape[1]
        with np.errstate(divide="ignore"):  # a weight of 0: log 0 = -inf, the item adds 0
            score = (items @ self.query).astype(np.float64) + np.log(w.astype(np.float64))
        positions = np.arange(length)
        age = positions[:, None] - positions[None, :]  # (j, i): items after i, up to j
        lam = float(self.decay)
        logits = np.where(age >= 0, score[:, None, :] - lam * age, -np.inf)  # (b, j, i)
        carried = state[:, d + 1 : d + 2].astype(np.float64) - lam * (positions + 1)  # (b, j)
        shift = np.maximum(carried, logits.max(axis=-1))
        factor = np.exp(logits - shift[..., None]).astype(np.float32)
        old = np.exp(carried - shift).astype(np.float32)[..., None]  # (b, j, 1)
        num = factor @ items + old * state[:, None, :d]
        den = factor.sum(axis=-1, keepdims=True) + old * state[:, None, d : d + 1]
        scanned: Floats = np.concatenate(
            [num, den, shift[..., None].astype(np.float32)], axis=-1
        ).astype(np.float32)
        return scanned
