"""Parametric whitening experts mixed by a (shared + per-scenario) gate.

UniSRec's MoE adaptor (Hou et al., KDD 2022): expert k maps a base vector ``x`` to
``(x - b_k) @ W_k`` (a learned centring ``b_k`` and a learned linear map ``W_k``); a gate
mixes the experts::

    g(x, s) = softmax(x @ G + c + S[s])          # (n_experts,)
    y       = unit( sum_k g_k(x, s) * (x - b_k) @ W_k )

``G``, ``c`` are the shared gate; ``S`` is the per-scenario offset table, initialised to
zero with row 0 (the "shared" scenario) frozen at zero, so a scenario that never
trained gives exactly the shared output (zero-shot transfer).

Init is close to identity when ``out_dim == dim`` (``W_k = I + noise``, ``b_k = 0``), so
version 0 ranks like the frozen language model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WhitenedMoE(nn.Module):
    """(n, dim) base vectors [+ (n,) scenario indices] -> (n, out_dim) unit vectors."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        n_experts: int,
        *,
        dropout: float = 0.0,
        scenario_experts: bool = True,
        max_scenarios: int = 1,
        init_noise: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim
        self.n_experts = n_experts
        self.bias = nn.Parameter(torch.zeros(n_experts, dim))  # b_k, whitening centre
        self.weight = nn.Parameter(torch.empty(n_experts, dim, out_dim))  # W_k
        self.gate = nn.Linear(dim, n_experts)  # shared gate G, c
        # padding_idx=0: row 0 gets no gradient, so "shared" stays exactly the shared gate.
        self.scenario_gate = (
            nn.Embedding(max_scenarios, n_experts, padding_idx=0) if scenario_experts else None
        )
        self.dropout = nn.Dropout(dropout)
        self._init_weights(init_noise)

    @torch.no_grad()
    def _init_weights(self, init_noise: float) -> None:
        if self.out_dim == self.dim:
            # Identity + a perturbation of relative size `init_noise` per expert: |E x| ~
            # init_noise for a unit x, and the mixture averages the experts' noise down.
            eye = torch.eye(self.dim)
            noise = torch.randn(self.n_experts, self.dim, self.dim)
            self.weight.copy_(eye + noise * (init_noise / math.sqrt(self.dim)))
        else:
            # No identity exists: a (semi-)orthogonal map per expert keeps inner products
            # when out_dim > dim, and is a random projection when out_dim < dim.
            for k in range(self.n_experts):
                nn.init.orthogonal_(self.weight[k])
        # Gate logits ~ N(0, 1) for a unit input: input-dependent from the start, so the
        # experts receive different gradients and do not stay copies of each other.
        nn.init.normal_(self.gate.weight, std=1.0)
        nn.init.zeros_(self.gate.bias)
        if self.scenario_gate is not None:
            nn.init.zeros_(self.scenario_gate.weight)

    def gates(self, x: Tensor, scenario: Tensor | None = None) -> Tensor:
        """(n, dim) unit vectors [+ (n,) long] -> (n, n_experts) mixture weights."""
        logits: Tensor = self.gate(x)
        if self.scenario_gate is not None and scenario is not None:
            offset: Tensor = self.scenario_gate(scenario)
            logits = logits + offset
        return torch.softmax(logits, dim=-1)

    def forward(self, base: Tensor, scenario: Tensor | None = None) -> Tensor:
        """(n, dim) base vectors [+ (n,) long scenario indices] -> (n, out_dim), rows unit.

        Never modifies ``base``. ``scenario`` is ignored when the module has no
        per-scenario gate.
        """
        x = F.normalize(base, dim=-1)  # a new tensor; the input stays untouched
        g = self.gates(x, scenario)  # (n, K)
        h = self.dropout(x)
        # One matrix product per expert (not an (n, K, out) tensor): memory stays
        # O(n * out_dim) when the whole catalog is re-projected at once.
        out = x.new_zeros(x.shape[0], self.out_dim)
        for k in range(self.n_experts):
            out = out + g[:, k : k + 1] * ((h - self.bias[k]) @ self.weight[k])
        return F.normalize(out, dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}, n_experts={self.n_experts}"
