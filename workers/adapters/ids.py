"""A learned per-item ID residual on top of the text projection (UniSRec's text + ID).

    rec(item) = unit( text_projection(item) + E[index(item)] )

``E`` is a zero-initialised table whose row 0 (the unknown item) is frozen at zero, so
an item that never trained -- or that the table never registered -- is exactly its
text projection: cold items keep the language model's zero-shot behaviour, warm items
learn a collaborative correction. Only the trainer registers ids; serving copies look
up with ``register=False`` so their map never diverges from the trainer's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


class ItemResidual(nn.Module):
    """item id -> row of a zero-init (capacity, dim) table; row 0 = unknown, always zero."""

    def __init__(self, capacity: int, dim: int) -> None:
        super().__init__()
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (row 0 is the unknown item), got {capacity}")
        self.capacity = capacity
        # padding_idx=0: row 0 gets no gradient and stays zero.
        self.table = nn.Embedding(capacity, dim, padding_idx=0)
        nn.init.zeros_(self.table.weight)
        self.ids: dict[str, int] = {}

    def index(self, item_id: str, *, register: bool = True) -> int:
        """Stable row of ``item_id``; 0 when unknown and not registering, or when full."""
        found = self.ids.get(item_id)
        if found is not None:
            return found
        nxt = len(self.ids) + 1
        if not register or nxt >= self.capacity:
            return 0
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
        self.ids = {str(k): int(v) for k, v in mapping.items()}

    def forward(self, rows: Tensor) -> Tensor:
        """(n,) long rows -> (n, dim) residuals (zero for row 0)."""
        out: Tensor = self.table(rows)
        return out

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}, registered={len(self.ids)}"
