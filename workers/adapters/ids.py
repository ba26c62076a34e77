"""A learned per-item ID residual on top of the text projection (UniSRec's text + ID).

    rec(item) = unit( text_projection(item) + w(item) * E[index(item)] )
    w(item)   = n / (n + c)  (n: times the item was a training target; 1 when c = 0)

``E`` is a zero-initialised table whose row 0 (the unknown item) is frozen at zero, so
an item that never trained -- or that the table never registered -- is exactly its
text projection: cold items keep the language model's zero-shot behaviour, warm items
learn a collaborative correction. Only the trainer registers ids; serving copies look
up with ``register=False`` so their map never diverges from the trainer's.

With a shrinkage pseudo-count ``c > 0`` the row is weighted by how often the item was a
training target (`observe`): the collaborative correction grows with the evidence for
it, an item with few interactions keeps mostly its text, and an item sampled only as a
negative keeps exactly its text (its row gets no gradient). The counts are a buffer of
the module, so every serving copy weighs rows as the trainer did.

The table holds rows only as far as items need them: it starts at ``INITIAL_ROWS`` (or
``capacity`` when smaller), grows as items register (at least doubling, never past
``capacity``), and loading a state dict takes the stored table's rows. So a dense step
of the trainer and each copy of the adapter cost what the registered items need (1.7k
rows on ML-100K), not ``capacity`` (16,384 by default). Growing replaces the table's
parameter: whoever holds an optimizer over it must follow (`OnlineTrainer` does, at
the start of each round, after reserving the rows the round can register).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

INITIAL_ROWS = 1024  # rows of a new table (row 0 included), when its capacity allows


class ItemResidual(nn.Module):
    """item id -> row of a zero-init (capacity, dim) table; row 0 = unknown, always zero."""

    def __init__(self, capacity: int, dim: int, shrinkage: float = 0.0) -> None:
        super().__init__()
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        self.shrinkage = shrinkage
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (row 0 is the unknown item), got {capacity}")
        self.capacity = capacity
        rows = min(capacity, INITIAL_ROWS)
        # padding_idx=0: row 0 gets no gradient and stays zero.
        self.table = nn.Embedding(rows, dim, padding_idx=0)
        nn.init.zeros_(self.table.weight)
        self.ids: dict[str, int] = {}
        if shrinkage > 0:  # only then part of the state (checkpoints without it load as before)
            self.register_buffer("counts", torch.zeros(rows))

    @property
    def rows(self) -> int:
        """Rows the table holds now (row 0 included); at most ``capacity``."""
        return int(self.table.weight.shape[0])

    def reserve(self, rows: int) -> None:
        """Grow the table to hold at least ``rows`` rows (capped at ``capacity``): at least
        doubling, so n registrations cost O(log n) copies. New rows are zero."""
        rows = min(rows, self.capacity)
        if rows > self.rows:
            self._resize(min(self.capacity, max(rows, 2 * self.rows)))

    def _resize(self, rows: int) -> None:
        old = self.table.weight
        grown = old.new_zeros((rows, old.shape[1]))
        kept = min(rows, old.shape[0])
        grown[:kept] = old.detach()[:kept]
        self.table.weight = nn.Parameter(grown, requires_grad=old.requires_grad)
        self.table.num_embeddings = rows
        if self.shrinkage > 0:
            counts = self.get_buffer("counts")
            fresh = counts.new_zeros(rows)
            fresh[:kept] = counts[:kept]
            self.counts = fresh

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        stored = state_dict.get(prefix + "table.weight")
        if isinstance(stored, Tensor) and stored.ndim == 2 and stored.shape[0] != self.rows:
            if not 1 <= stored.shape[0] <= self.capacity:
                raise ValueError(
                    f"{prefix}table.weight has {stored.shape[0]} rows; capacity {self.capacity}"
                )
            self._resize(int(stored.shape[0]))  # the stored table's rows, then load as usual
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def index(self, item_id: str, *, register: bool = True) -> int:
        """Stable row of ``item_id``; 0 when unknown and not registering, or when full."""
        found = self.ids.get(item_id)
        if found is not None:
            return found
        nxt = len(self.ids) + 1
        if not register or nxt >= self.capacity:
            return 0
        self.reserve(nxt + 1)
        self.ids[item_id] = nxt
        return nxt

    def indices(self, item_ids: Iterable[str], *, register: bool = True) -> Tensor:
        """[id] -> (n,) long tensor of `index` values."""
        rows = [self.index(i, register=register) for i in item_ids]
        return torch.tensor(rows, dtype=torch.long, device=self.table.weight.device)

    def load_ids(self, mapping: Mapping[str, int]) -> None:
        """Replace the map (from a saved adapter), checking it is a valid one."""
        values = sorted(mapping.values())
        if values != list(range(1, len(values) + 1)) or len(values) >= self.capacity:
            raise ValueError(f"invalid item map for capacity {self.capacity}")
        self.reserve(len(values) + 1)
        self.ids = {str(k): int(v) for k, v in mapping.items()}

    def observe(self, item_ids: Iterable[str]) -> None:
        """Count each of ``item_ids`` (repeats count) as a training target once more,
        registering new ones; nothing to count without shrinkage."""
        if self.shrinkage > 0:
            rows = self.indices(item_ids)
            counts = self.get_buffer("counts")
            counts.index_add_(0, rows, torch.ones(rows.shape, device=rows.device))
            counts[0] = 0.0  # the unknown row (and a full table's overflow) stays zero

    def weights(self, rows: Tensor) -> Tensor:
        """(n,) long rows -> (n,) weights n / (n + c) of their residuals (1 without shrinkage)."""
        if self.shrinkage <= 0:
            return torch.ones(rows.shape, device=rows.device)
        seen = self.get_buffer("counts")[rows]
        return seen / (seen + self.shrinkage)

    def forward(self, rows: Tensor) -> Tensor:
        """(n,) long rows -> (n, dim) residuals (zero for row 0), shrunk by `weights`."""
        out: Tensor = self.table(rows)
        if self.shrinkage > 0:
            out = out * self.weights(rows).unsqueeze(-1)
        return out

    def extra_repr(self) -> str:
        return (
            f"capacity={self.capacity}, rows={self.rows}, registered={len(self.ids)}, "
            f"shrinkage={self.shrinkage}"
        )
