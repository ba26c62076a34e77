"""The trainer's optimizer: Adam over the adapter, with the ID table dense or lazy.

Dense (``lazy_ids=False``): one fused Adam(W) over every parameter (torch's ``fused=True``:
the default update in one pass per tensor; the ID table, most of the parameters, costs
5 ms a step on one CPU core against 38 ms single-tensor, BENCHMARKS.md session 11).
Each step moves every row of the ID table that has a moment, so a row keeps moving for
tens of steps after the last step that had a gradient for it; and Adam divides by the
root of the second moment, so a row moves about as far whatever the size of its
gradients (a tiny push as a sampled negative moves it as far as being a target).

Decay of the ID rows (``id_weight_decay`` w > 0, dense only): the table gets AdamW's
decoupled weight decay, each step scaling every row by ``1 - rate * w`` (``rate``: the
table's learning rate) on top of its Adam update. Rows start at zero, so this pulls each
item back toward its text projection (the text prior) unless its interactions keep
pushing it away, and undoes the drift of rows whose last gradient is long past. The
other parameters get none (AdamW with no decay is Adam's update).

The ID table learns at ``id_learning_rate`` (None: the shared ``learning_rate``), dense or
lazy.

Lazy (``lazy_ids=True``): the table gives sparse gradients (``nn.Embedding(sparse=True)``)
to a ``torch.optim.SparseAdam`` of its own, which updates the moments and values of the
rows a step touched only (TensorFlow's LazyAdam); the rest stays in the fused Adam.

The table is replaced each time it grows (`ItemResidual.reserve`): `follow_table` points
whichever optimizer holds it at the new parameter, Adam's moments carried over (new rows
start at zero).
"""

from __future__ import annotations

from typing import Any

import torch

from workers.adapters import RecAdapter


class AdapterOptimizer:
    """Adam over ``adapter``'s parameters; the ID table dense (its own group, with its
    decay) or lazy (module docstring)."""

    def __init__(
        self,
        adapter: RecAdapter,
        learning_rate: float,
        *,
        lazy_ids: bool = False,
        decay_learning_rate: float | None = None,
        id_weight_decay: float = 0.0,
        id_learning_rate: float | None = None,
    ) -> None:
        if id_weight_decay < 0:
            raise ValueError(f"id_weight_decay must be >= 0, got {id_weight_decay}")
        if id_weight_decay and lazy_ids:
            raise ValueError("id_weight_decay needs the dense ID update (lazy_ids off)")
        self.adapter = adapter
        residual = adapter.item_residual
        self.lazy = lazy_ids and residual is not None
        table = residual.table.weight if residual is not None else None
        slope = adapter.aggregator.decay_raw
        own_rate = slope is not None and decay_learning_rate is not None
        id_rate = learning_rate if id_learning_rate is None else id_learning_rate
        rest = [p for p in adapter.parameters() if p is not table and not (own_rate and p is slope)]
        groups: list[dict[str, Any]] = [{"params": rest}]
        if table is not None and not self.lazy:
            groups.append({"params": [table], "lr": id_rate, "weight_decay": id_weight_decay})
        if own_rate:
            groups.append({"params": [slope], "lr": decay_learning_rate})
        self.dense = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=0.0, fused=True)
        self.sparse: torch.optim.SparseAdam | None = None
        if self.lazy and residual is not None:
            residual.table.sparse = True
            self.sparse = torch.optim.SparseAdam([residual.table.weight], lr=id_rate)

    def zero_grad(self) -> None:
        self.dense.zero_grad(set_to_none=True)
        if self.sparse is not None:
            self.sparse.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.dense.step()
        if self.sparse is not None:
            self.sparse.step()  # type: ignore[no-untyped-call]

    def follow_table(self) -> None:
        """Point the optimizer holding the ID table at its current parameter."""
        residual = self.adapter.item_residual
        if residual is None:
            return
        table = residual.table.weight
        optimizer: torch.optim.Optimizer = self.sparse if self.sparse is not None else self.dense
        params = optimizer.param_groups[0 if self.sparse is not None else 1]["params"]
        if any(p is table for p in params):
            return
        current = {id(p) for p in self.adapter.parameters()}
        stale = [n for n, p in enumerate(params) if id(p) not in current]
        if len(stale) != 1:
            raise RuntimeError(f"the optimizer holds {len(stale)} parameters the adapter lost")
        old = params[stale[0]]
        params[stale[0]] = table
        moments = optimizer.state.pop(old, {})
        if moments:
            optimizer.state[table] = {k: _grown(v, old, table) for k, v in moments.items()}


def _grown(moment: Any, old: torch.Tensor, new: torch.Tensor) -> Any:
    """An optimizer state entry of ``old`` for ``new`` (more rows): per-row moments are
    padded with zeros; anything else (the step count: a tensor for Adam, an int for
    SparseAdam) is kept."""
    if not isinstance(moment, torch.Tensor) or moment.shape != old.shape:
        return moment
    grown = moment.new_zeros(new.shape)
    grown[: old.shape[0]] = moment
    return grown
