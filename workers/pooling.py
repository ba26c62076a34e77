"""Pooling of token states into one unit vector per text (pure torch, no I/O)."""

from __future__ import annotations

import torch


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states of the real (unmasked) tokens.

    (batch, tokens, dim), (batch, tokens) -> (batch, dim)
    """
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    summed = (token_states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


def cls_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first token's state. (batch, tokens, dim), (batch, tokens) -> (batch, dim)"""
    del attention_mask
    return token_states[:, 0]


def l2_normalize(vectors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit length (zero rows stay zero). Returns a new tensor."""
    return torch.div(vectors, vectors.norm(dim=-1, keepdim=True).clamp(min=eps))


POOLERS = {"mean": mean_pool, "cls": cls_pool}
