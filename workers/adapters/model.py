"""`RecAdapter`: the whole learnable part on top of the frozen language model.

    item:  base (n, dim) --WhitenedMoE(scenario)--> rec vector (n, out_dim), unit
    user:  history base (b, L, dim) --MoE per item--> (b, L, out) --aggregator--> (b, out)

Scores are inner products of unit vectors (cosine), so the catalog's "rec" vectors and
the user vectors go straight into the vector store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.adapters.aggregator import SequenceAggregator
from workers.adapters.config import AdapterConfig
from workers.adapters.moe import WhitenedMoE

SHARED = "shared"  # scenario name of index 0, also where unknown scenarios go

Scenario = int | Tensor


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

    def project(self, base: Tensor, scenario: Scenario = 0) -> Tensor:
        """(n, dim) base vectors, scenario int | (n,) -> (n, out_dim) unit rec vectors.

        The catalog re-projection after a new version: one pass of matrix products over
        cached base vectors, no language model. ``base`` is never modified.
        """
        if base.ndim != 2 or base.shape[1] != self.config.dim:
            raise ValueError(f"base must be (n, {self.config.dim}), got {tuple(base.shape)}")
        x = base.to(self.moe.weight.dtype)
        out: Tensor = self.moe(x, self._scenario_tensor(scenario, x.shape[0], x.device))
        return out

    def user(self, history: Tensor, mask: Tensor | None = None, scenario: Scenario = 0) -> Tensor:
        """(b, L, dim) history base vectors (oldest first), (b, L) bool mask, scenario
        int | (b,) -> (b, out_dim) unit user vectors (zero for an empty history)."""
        if history.ndim != 3 or history.shape[2] != self.config.dim:
            raise ValueError(f"history must be (b, L, {self.config.dim}), got {history.shape}")
        b, length, dim = history.shape
        idx = self._scenario_tensor(scenario, b, history.device)
        items = self.project(history.reshape(b * length, dim), idx.repeat_interleave(length))
        out: Tensor = self.aggregator(items.reshape(b, length, -1), mask)
        return out

    # -- incremental serving path ------------------------------------------------------

    def initial_state(self, batch: int = 1) -> Tensor:
        """(batch, state_size) empty user states."""
        return self.aggregator.initial_state(batch, self.moe.weight.device)

    def step(self, state: Tensor, base_item: Tensor, scenario: Scenario = 0) -> Tensor:
        """Fold one event per row: (b, state_size), (b, dim) base item -> new state, O(d)."""
        item = self.project(base_item, scenario)
        new: Tensor = self.aggregator.step(state, item)
        return new

    def readout(self, state: Tensor) -> Tensor:
        """(b, state_size) -> (b, out_dim) unit user vectors."""
        out: Tensor = self.aggregator.readout(state)
        return out

    # -- training ------------------------------------------------------------------------

    def loss(
        self,
        history: Tensor,
        mask: Tensor | None,
        positives: Tensor,
        negatives: Tensor | None = None,
        scenario: Scenario = 0,
    ) -> Tensor:
        """InfoNCE over (history -> next item): scalar mean loss.

        history (b, L, dim), mask (b, L), positives (b, dim) base vectors of each row's
        next item, negatives (b, m, dim) sampled base vectors or None. Row i's candidates
        are every row's positive (in-batch negatives) plus its own negatives; another
        row's positive that is the same vector as row i's is not counted as a negative.
        """
        b = history.shape[0]
        if positives.shape != (b, self.config.dim):
            raise ValueError(f"positives must be ({b}, {self.config.dim}), got {positives.shape}")
        idx = self._scenario_tensor(scenario, b, history.device)
        users = self.user(history, mask, idx)  # (b, out)
        pos = self.project(positives, idx)  # (b, out)
        logits = users @ pos.T  # (b, b)
        # Duplicate positives (two rows whose next item is the same) are not negatives
        # of each other. torch.unique groups equal rows in O(b log b * dim).
        _, group = torch.unique(positives.detach(), dim=0, return_inverse=True)
        same = group.unsqueeze(1) == group.unsqueeze(0)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
        if negatives is not None:
            if negatives.ndim != 3 or negatives.shape[0] != b:
                raise ValueError(f"negatives must be ({b}, m, dim), got {negatives.shape}")
            m = negatives.shape[1]
            neg = self.project(negatives.reshape(b * m, -1), idx.repeat_interleave(m))
            logits = torch.cat([logits, torch.einsum("bd,bmd->bm", users, neg.view(b, m, -1))], 1)
        target = torch.arange(b, device=logits.device)
        return F.cross_entropy(logits / self.config.temperature, target)
