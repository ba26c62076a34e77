"""Leave-one-out split by time (the literature's "LS valid_and_test" protocol).

In: events as mappings with ``user_id``, ``item_id`` (and ``ts``), already in stream
order, i.e. stably sorted by ``ts`` with ties kept in file order (what
``tooling.datasets`` produces). This module never re-sorts: the input order *is* the
time order, so tied timestamps keep their order.

Out: a :class:`Split`. Per user, in stream order: the last event is the test target,
the second-to-last the validation target, everything earlier is training. Users with
fewer than 3 events stay entirely in training and get no target. (RecBole's
``_split_index_by_leave_one_out`` would give a 2-event user a test target and no
validation target; the shared protocol evaluates users with >= 3 events only, and on
ML-100K / ml-latest-small every user has >= 20 events, so the two agree there.)

Histories follow RecBole's full-sort evaluation (``history = used_ids[phase] -
positives``, with ``used_ids`` accumulated over train, then valid, then test):

* scoring VALID, the items excluded from the ranking are the user's training items;
* scoring TEST, they are the training items *and* the validation item;
* in both, the target itself is never excluded, even when the user had already
  consumed it earlier (a repeat): RecBole removes the positives from the history.

The model itself is fitted on ``train`` only; the validation event is not folded into
its input when scoring test (RecBole does not retrain after validation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

UserId = str
ItemId = str
Event = Mapping[str, Any]

MIN_EVENTS = 3


@dataclass(frozen=True)
class Split:
    """Training events and one validation / test target per evaluated user.

    ``train``: training events, in global stream order (the input mappings themselves,
    not copies, never modified). ``valid`` / ``test``: user -> target item, in order of
    the users' first appearance. ``items``: every item id seen in any event (train,
    valid or test), in order of first appearance: the ranking universe by default.
    """

    train: list[Event]
    valid: dict[UserId, ItemId]
    test: dict[UserId, ItemId]
    items: tuple[ItemId, ...] = field(default=())

    @cached_property
    def train_items_by_user(self) -> dict[UserId, tuple[ItemId, ...]]:
        """user -> distinct training items, in order of first interaction."""
        seen: dict[UserId, dict[ItemId, None]] = {}
        for event in self.train:
            seen.setdefault(str(event["user_id"]), {})[str(event["item_id"])] = None
        return {user: tuple(items) for user, items in seen.items()}

    @cached_property
    def item_train_counts(self) -> dict[ItemId, int]:
        """item -> number of training interactions (repeats count)."""
        return dict(Counter(str(e["item_id"]) for e in self.train))

    @cached_property
    def user_train_counts(self) -> dict[UserId, int]:
        """user -> number of training interactions (repeats count)."""
        return dict(Counter(str(e["user_id"]) for e in self.train))

    def history_for_valid(self, user: UserId) -> frozenset[ItemId]:
        """Items excluded when ranking ``user``'s validation target: the training items,
        minus the validation target itself (RecBole: ``used_ids['valid'] - positives``)."""
        history = set(self.train_items_by_user.get(user, ()))
        history.discard(self.valid.get(user, ""))
        return frozenset(history)

    def history_for_test(self, user: UserId) -> frozenset[ItemId]:
        """Items excluded when ranking ``user``'s test target: training items plus the
        validation item, minus the test target itself (RecBole: ``used_ids['test'] -
        positives``)."""
        history = set(self.train_items_by_user.get(user, ()))
        if user in self.valid:
            history.add(self.valid[user])
        history.discard(self.test.get(user, ""))
        return frozenset(history)

    def history(self, user: UserId, for_: str) -> frozenset[ItemId]:
        """``history_for_test`` (``for_="test"``) or ``history_for_valid`` (``"valid"``)."""
        return (
            self.history_for_test(user) if _phase(for_) == "test" else self.history_for_valid(user)
        )

    def targets(self, for_: str) -> dict[UserId, ItemId]:
        """A copy of ``test`` (``for_="test"``) or ``valid`` (``for_="valid"``)."""
        return dict(self.test if _phase(for_) == "test" else self.valid)


def _phase(for_: str) -> str:
    if for_ not in ("test", "valid"):
        raise ValueError(f"for_ must be 'test' or 'valid', not {for_!r}")
    return for_


def leave_one_out(events: Sequence[Event], min_events: int = MIN_EVENTS) -> Split:
    """Split ``events`` (stream order, stably time-sorted) by leave-one-out per user.

    Returns a :class:`Split`; ``events`` and its mappings are not modified. Users with
    fewer than ``min_events`` (>= 3) events are kept in training without targets.
    """
    if min_events < 3:
        raise ValueError("min_events must be >= 3 (one training, one valid, one test event)")
    positions: dict[UserId, list[int]] = {}
    items: dict[ItemId, None] = {}
    for index, event in enumerate(events):
        positions.setdefault(str(event["user_id"]), []).append(index)
        items[str(event["item_id"])] = None
    held_out: set[int] = set()
    valid: dict[UserId, ItemId] = {}
    test: dict[UserId, ItemId] = {}
    for user, indices in positions.items():
        if len(indices) < min_events:
            continue
        valid[user] = str(events[indices[-2]]["item_id"])
        test[user] = str(events[indices[-1]]["item_id"])
        held_out.update(indices[-2:])
    train = [event for index, event in enumerate(events) if index not in held_out]
    return Split(train=train, valid=valid, test=test, items=tuple(items))
