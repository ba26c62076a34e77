"""`RecAdapter`: the whole learnable part on top of the frozen language model.

    item:  base (n, dim) --WhitenedMoE(scenario) [+ ID residual]--> rec (n, out_dim), unit
    user:  history rec (b, L, out) --aggregator--> (b, out)

Serving (no grad, eval mode, never registers scenarios or items): `item_vectors`
re-projects the catalog after a new version; `user_from_items` recomputes users from
their stored history's rec vectors; `initial_state`/`step_items`/`readout` fold one
event at a time in O(d) and agree with `user_from_items` (within ``max_history``).

Scores are inner products of unit vectors (cosine), so the catalog's "rec" vectors and
the user vectors go straight into the vector store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.adapters.aggregator import SequenceAggregator
from workers.adapters.config import AdapterConfig
from workers.adapters.ids import ItemResidual
from workers.adapters.moe import WhitenedMoE

SHARED = "shared"  # scenario name of index 0, also where unknown scenarios go

Scenario = int | Tensor
_CHUNK = 8192  # rows re-projected per matrix product: bounded memory for any catalog


class RecAdapter(nn.Module):
    """WhitenedMoE + SequenceAggregator, with a persistent scenario -> index map."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        self.moe = WhitenedMoE(
            config.dim,
            config.out_features,
            config.n_experts,
            dropout=config.dropout,
            scenario_experts=config.scenario_experts,
            max_scenarios=config.max_scenarios,
            init_noise=config.init_noise,
        )
        self.aggregator = SequenceAggregator(
            config.out_features,
            config.aggregator,
            max_history=config.max_history,
            recency=config.recency,
        )
        self.item_residual = (
            ItemResidual(config.max_items, config.out_features, config.id_shrinkage)
            if config.max_items >= 2
            else None
        )
        self.version = 0
        # Registered scenarios, 1 .. max_scenarios - 1; 0 (SHARED) is implicit.
        self.scenarios: dict[str, int] = {}

    # -- scenarios ---------------------------------------------------------------------

    def scenario_index(self, name: str | None, *, register: bool = True) -> int:
        """Stable index of a scenario's gate row; 0 = shared.

        A new name gets the next free index when ``register`` (the trainer); otherwise,
        or when the table is full, or without per-scenario experts, it maps to 0. An
        index that never trained has a zero gate offset, so 0 and a fresh index give
        the same output: serving copies should look up with ``register=False`` so their
        map never diverges from the trainer's.
        """
        if not self.config.scenario_experts or not name or name == SHARED:
            return 0
        found = self.scenarios.get(name)
        if found is not None:
            return found
        nxt = len(self.scenarios) + 1
        if not register or nxt >= self.config.max_scenarios:
            return 0
        self.scenarios[name] = nxt
        return nxt

    def scenario_indices(self, names: Iterable[str | None], *, register: bool = True) -> Tensor:
        """[name] -> (n,) long tensor of `scenario_index` values."""
        idx = [self.scenario_index(n, register=register) for n in names]
        return torch.tensor(idx, dtype=torch.long)

    def load_scenarios(self, mapping: Mapping[str, int]) -> None:
        """Replace the map (from a saved adapter), checking it is a valid one."""
        values = sorted(mapping.values())
        if values != list(range(1, len(values) + 1)) or len(values) >= self.config.max_scenarios:
            raise ValueError(f"invalid scenario map for max_scenarios: {dict(mapping)}")
        self.scenarios = {str(k): int(v) for k, v in mapping.items()}

    # -- items (ID residual) -------------------------------------------------------------

    @property
    def items(self) -> dict[str, int]:
        """Registered item id -> residual row (empty without an ID table)."""
        return {} if self.item_residual is None else self.item_residual.ids

    def item_index(self, item_id: str, *, register: bool = True) -> int:
        """Residual row of an item; 0 (text only) when unknown, full or without a table."""
        if self.item_residual is None:
            return 0
        return self.item_residual.index(item_id, register=register)

    def item_indices(self, item_ids: Iterable[str], *, register: bool = True) -> Tensor:
        """[id] -> (n,) long tensor of `item_index` values."""
        return torch.tensor(
            [self.item_index(i, register=register) for i in item_ids], dtype=torch.long
        )

    def observe_targets(self, item_ids: Iterable[str]) -> None:
        """Count training targets for the ID residual's shrinkage (`ItemResidual.observe`)."""
        if self.item_residual is not None:
            self.item_residual.observe(item_ids)

    def load_items(self, mapping: Mapping[str, int]) -> None:
        """Replace the item map (from a saved adapter)."""
        if self.item_residual is None:
            if mapping:
                raise ValueError("item map given but the adapter has no ID table (max_items)")
            return
        self.item_residual.load_ids(mapping)

    def _scenario_tensor(self, scenario: Scenario, n: int, device: torch.device) -> Tensor:
        idx = torch.as_tensor(scenario, dtype=torch.long, device=device)
        if idx.ndim == 0:
            idx = idx.expand(n)
        if idx.shape != (n,):
            raise ValueError(f"scenario must be an int or shape ({n},), got {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.max_scenarios):
            raise ValueError(f"scenario index out of [0, {self.config.max_scenarios})")
        return idx

    # -- forward paths -------------------------------------------------------------------

    def project(self, base: Tensor, scenario: Scenario = 0, items: Tensor | None = None) -> Tensor:
        """(n, dim) base vectors, scenario int | (n,), optional (n,) long residual rows
        (`item_index`) -> (n, out_dim) unit rec vectors.

        The catalog re-projection after a new version: one pass of matrix products over
        cached base vectors, no language model. ``base`` is never modified. Row 0 (or
        ``items=None``) is exactly the text projection.
        """
        if base.ndim != 2 or base.shape[1] != self.config.dim:
            raise ValueError(f"base must be (n, {self.config.dim}), got {tuple(base.shape)}")
        x = base.to(self.moe.weight.dtype)
        out: Tensor = self.moe(x, self._scenario_tensor(scenario, x.shape[0], x.device))
        if items is None or self.item_residual is None:
            return out
        if items.shape != (x.shape[0],):
            raise ValueError(f"items must be ({x.shape[0]},), got {tuple(items.shape)}")
        rows = items.to(device=x.device, dtype=torch.long)
        if self.training and self.config.id_dropout > 0:  # some items learn as if cold
            kept = torch.rand(rows.shape, device=rows.device) >= self.config.id_dropout
            rows = rows * kept
        mixed = F.normalize(out + self.item_residual(rows), dim=-1)
        return torch.where((rows > 0).unsqueeze(-1), mixed, out)

    # -- serving (no grad, eval mode, never registers) -----------------------------------

    @contextmanager
    def _serving(self) -> Iterator[None]:
        if not self.training:  # a served adapter is in eval mode: no module walk per call
            with torch.no_grad():
                yield
            return
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(True)

    def item_vectors(
        self, item_ids: Sequence[str], base: Tensor, scenarios: Sequence[str | None]
    ) -> Tensor:
        """Catalog items -> (n, out_dim) unit rec vectors, for the store's "rec" vector.

        ``base`` (n, dim) are the items' frozen LM vectors, ``scenarios`` their scenario
        names. Unknown scenarios use the shared gate, unknown items their text only.
        """
        n = base.shape[0] if base.ndim == 2 else -1
        if len(item_ids) != n or len(scenarios) != n:
            raise ValueError(
                f"item_ids ({len(item_ids)}), base {tuple(base.shape)} and scenarios "
                f"({len(scenarios)}) must describe the same n items"
            )
        scen = self.scenario_indices(scenarios, register=False).to(base.device)
        rows = self.item_indices(item_ids, register=False).to(base.device)
        with self._serving():
            parts = [
                self.project(base[i : i + _CHUNK], scen[i : i + _CHUNK], rows[i : i + _CHUNK])
                for i in range(0, n, _CHUNK)
            ]
        if not parts:
            return torch.zeros(0, self.config.out_features)
        return torch.cat(parts)

    def user_from_items(self, items: Tensor, mask: Tensor | None = None) -> Tensor:
        """(b, L, out_dim) rec vectors of each user's history (oldest first), (b, L) bool
        mask -> (b, out_dim) unit user vectors (zero for an empty history).

        The recompute path after a version change; equals folding the same items with
        `step_items` when L <= ``max_history``.
        """
        if items.ndim != 3 or items.shape[2] != self.config.out_features:
            raise ValueError(
                f"items must be (b, L, {self.config.out_features}), got {tuple(items.shape)}"
            )
        with self._serving():
            out: Tensor = self.aggregator(items.to(self.moe.weight.dtype), mask)
        return out

    # -- incremental serving path ------------------------------------------------------

    def initial_state(self, batch: int = 1) -> Tensor:
        """(batch, state_size) empty user states."""
        return self.aggregator.initial_state(batch, self.moe.weight.device)

    def step_items(self, state: Tensor, rec_items: Tensor, weights: Tensor | None = None) -> Tensor:
        """Fold one already-projected rec vector per row: (b, state_size), (b, out_dim),
        (b,) event weights (None = 1) -> new state, O(d) (O(d^2) for 'gru'). Pure, no grad."""
        if rec_items.ndim != 2 or rec_items.shape[1] != self.config.out_features:
            raise ValueError(
                f"rec_items must be (b, {self.config.out_features}), got {rec_items.shape}"
            )
        with self._serving():
            new: Tensor = self.aggregator.step(state, rec_items.to(self.moe.weight.dtype), weights)
        return new

    def fold_items(self, rec_items: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
        """(b, L, out_dim) rec vectors of each user's history (oldest first), (b, L) event
        weights, (b, L) bool mask -> (b, state_size): what `step_items` from the empty
        state gives over each row's valid items, in one pass (see
        `SequenceAggregator.fold`). Pure, no grad."""
        if rec_items.ndim != 3 or rec_items.shape[2] != self.config.out_features:
            raise ValueError(
                f"rec_items must be (b, L, {self.config.out_features}), got {rec_items.shape}"
            )
        with self._serving():
            dtype = self.moe.weight.dtype
            out: Tensor = self.aggregator.fold(rec_items.to(dtype), weights.to(dtype), mask)
        return out

    def readout(self, state: Tensor) -> Tensor:
        """(b, state_size) -> (b, out_dim) unit user vectors."""
        out: Tensor = self.aggregator.readout(state)
        return out
