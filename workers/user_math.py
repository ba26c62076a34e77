"""Incremental user embedding (pure numpy, no I/O).

A user's state holds an unnormalised running vector ``v``. Each event folds its item
vector ``x`` (weight ``w``) in with a per-event decay ``r``::

    v <- r * v + w * x

which is O(d) per event and never re-reads the history: recent items dominate, older
ones fade geometrically. The query vector is ``v / |v|``. Event text and items whose
catalog record arrived late are folded in the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


def fold(vector: Vector | None, item: Vector, weight: float, recency: float) -> Vector:
    """Return ``recency * vector + weight * unit(item)``; ``vector=None`` is the empty state."""
    unit = normalized(item)
    if vector is None:
        return (weight * unit).astype(np.float32)
    return (recency * vector + weight * unit).astype(np.float32)


def normalized(vector: Vector) -> Vector:
    """Unit-length copy (a zero vector stays zero)."""
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return vector.astype(np.float32, copy=True)
    return (vector / norm).astype(np.float32)


def is_usable(vector: Vector | None) -> bool:
    """A vector that can serve as a query (present, finite, non-zero)."""
    return (
        vector is not None
        and bool(np.all(np.isfinite(vector)))
        and float(np.linalg.norm(vector)) > 0.0
    )


def bounded_history(history: Sequence[str], item_id: str, size: int) -> list[str]:
    """Append ``item_id`` (moving it to the end if present), keep the last ``size`` ids."""
    kept = [i for i in history if i != item_id]
    kept.append(item_id)
    return kept[-size:]


def encode_vector(vector: Vector | None) -> str | None:
    """float32 vector -> compact base64 text (for JSON table values)."""
    if vector is None:
        return None
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str | None) -> Vector | None:
    """Inverse of `encode_vector`."""
    if text is None:
        return None
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)
