"""Training samples (history -> next item) and the bounded replay buffer holding them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One next-item example: ``history`` (item ids, oldest first, the user's recent items
    before the event), the ``target`` item of the event, the event's ``scenario``, and
    the ``user_id`` it came from (None: not known, e.g. a simulation), so a forgotten
    user's samples can be dropped (`ReplayBuffer.forget`)."""

    history: tuple[str, ...]
    target: str
    scenario: str = "default"
    user_id: str | None = None


class ReplayBuffer:
    """The ``capacity`` most recent samples (a ring: the oldest is dropped first)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ring: list[Sample] = []
        self._next = 0  # slot the next sample overwrites once the ring is full

    def __len__(self) -> int:
        return len(self._ring)

    def __iter__(self) -> Iterator[Sample]:
        """Oldest first."""
        yield from self._ring[self._next :]
        yield from self._ring[: self._next]

    def add(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            if len(self._ring) < self.capacity:
                self._ring.append(sample)
            else:
                self._ring[self._next] = sample
                self._next = (self._next + 1) % self.capacity

    def forget(self, user_ids: Collection[str]) -> int:
        """Drop every sample of ``user_ids``; returns how many were dropped. The others
        keep their order (oldest first)."""
        if not user_ids or not self._ring:
            return 0
        kept = [s for s in self if s.user_id not in user_ids]
        dropped = len(self._ring) - len(kept)
        if dropped:
            self._ring, self._next = kept, 0  # not full any more: appends until it is
        return dropped

    def newest(self, n: int) -> list[Sample]:
        """The ``n`` most recent samples, oldest first (all of them when fewer)."""
        if n <= 0:
            return []
        return list(self)[-n:]

    def sample(self, n: int, rng: np.random.Generator, *, hold_out: int = 0) -> list[Sample]:
        """``n`` samples drawn uniformly without replacement (all of them when fewer)
        among all but the ``hold_out`` most recent ones."""
        if n < 0 or hold_out < 0:
            raise ValueError(f"n and hold_out must be >= 0, got {n}, {hold_out}")
        size = max(0, len(self._ring) - hold_out)
        picks = rng.permutation(size) if n >= size else rng.choice(size, size=n, replace=False)
        # Position p (oldest first) is ring slot p while filling, (next + p) % capacity once full.
        offset = self._next if len(self._ring) == self.capacity else 0
        return [self._ring[(offset + int(p)) % len(self._ring)] for p in picks]
