"""Cold-start slices: the evaluated users whose target item, or who themselves, had
few training interactions.

In: a :class:`~tooling.evaluation.split.Split`, the phase (``"test"`` or ``"valid"``),
and top-K lists (user -> item ids, history already excluded). Out: per slice, the
targets in it (:func:`slice_targets`) or its :class:`RankingMetrics`
(:func:`evaluate_slices`; ``RankingMetrics.users`` is the slice's size).

A :class:`SliceSpec` is a rule on training counts, the same for both phases:
``on="item"`` keeps the users whose *target item* of the phase has fewer than
``below`` training interactions (``Split.item_train_counts``, repeats count);
``on="user"`` keeps the users with fewer than ``below`` training events
(``Split.user_train_counts``). Counts are always those of ``split.train``: the
validation event is not training data, even when scoring test (see ``split.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tooling.evaluation.metrics import RankingMetrics, evaluate
from tooling.evaluation.split import ItemId, Split, UserId


@dataclass(frozen=True)
class SliceSpec:
    """Users whose target item (``on="item"``) or who (``on="user"``) had fewer than
    ``below`` training interactions; ``name`` labels the slice in reports."""

    name: str
    on: Literal["item", "user"]
    below: int

    def __post_init__(self) -> None:
        if self.on not in ("item", "user"):
            raise ValueError(f"SliceSpec.on must be 'item' or 'user', not {self.on!r}")
        if self.below < 1:
            raise ValueError(f"SliceSpec.below must be >= 1, not {self.below}")
        if not self.name:
            raise ValueError("SliceSpec.name must not be empty")

    @property
    def description(self) -> str:
        """The rule in words, e.g. "target item with < 5 training interactions"."""
        who = "target item" if self.on == "item" else "user"
        what = "training interactions" if self.on == "item" else "training events"
        if self.below == 1:
            return f"{who} with 0 {what}"
        return f"{who} with < {self.below} {what}"


COLD_START_SLICES: tuple[SliceSpec, ...] = (
    SliceSpec("cold items (0 train)", "item", 1),
    SliceSpec("rare items (<5 train)", "item", 5),
    SliceSpec("cold users (<5 train)", "user", 5),
)


def slice_targets(split: Split, spec: SliceSpec, for_: str = "test") -> dict[UserId, ItemId]:
    """The targets of phase ``for_`` (user -> item, in ``split.targets`` order) whose
    user belongs to the slice ``spec``."""
    targets = split.targets(for_)
    if spec.on == "item":
        counts = split.item_train_counts
        return {u: i for u, i in targets.items() if counts.get(i, 0) < spec.below}
    users = split.user_train_counts
    return {u: i for u, i in targets.items() if users.get(u, 0) < spec.below}


def evaluate_slices(
    split: Split,
    ranked: Mapping[UserId, Sequence[ItemId]],
    for_: str = "test",
    k: int = 10,
    slices: Sequence[SliceSpec] = COLD_START_SLICES,
    catalog_size: int | None = None,
) -> dict[str, RankingMetrics]:
    """slice name -> metrics@``k`` of ``ranked`` over the slice's targets of ``for_``, in
    ``slices`` order (an empty slice gives ``users == 0`` and zeros). Coverage counts the
    slice's users' lists only. Raises ValueError on duplicate slice names."""
    names = [spec.name for spec in slices]
    if len(set(names)) != len(names):
        raise ValueError(f"slice names must be distinct: {names}")
    return {
        spec.name: evaluate(ranked, slice_targets(split, spec, for_), k, catalog_size)
        for spec in slices
    }
