"""Forgetting a user: a `ForgetUser` record, in its place among the user's events.

    events ──ingest──► by-user topic (key user_id) ──recommend agent, in order──►
        ForgetUser ──► del users[user_id]        (a tombstone on the changelog)
                   └─► TrainerActor.forget([user_id])  (samples in inbox and replay buffer)

The state holds everything else kept of a user (history, pending items, the event ids
applied, the running vector), so removing it removes them; the next event of the user
starts a new state, as a new user's would. The recommender keeps no per-user cache (its
trend vectors are per scenario, an aggregate of every user's recent items that decays).
A sample already drawn into a training round that is running keeps its part in that
round; no later round sees it.

A forget whose samples the trainer cannot drop for longer than ``give_up_after`` goes
to dead letters with the reason (its state is removed already): replaying it is safe,
forgetting is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from functools import partial
from typing import Any

from streams import deadletters
from streams.app import Topics
from streams.remote import GaveUp, InputFailed, call_until_done, describe
from streams.schemas import KeyedForget
from streams.settings import RetryConfig
from streams.trainer_feed import TrainerFeed
from workers.actors import Actors

log = logging.getLogger(__name__)


def remove_states(users: MutableMapping[bytes, Any], user_ids: Sequence[str]) -> int:
    """Delete the users' table entries (a changelog tombstone each, as `streams.expiry`
    does); returns how many were there."""
    removed = 0
    for uid in dict.fromkeys(user_ids):
        key = uid.encode()
        if users.get(key) is not None:
            del users[key]
            removed += 1
    return removed


async def forget_users(
    forgets: Sequence[KeyedForget],
    *,
    topics: Topics,
    users: MutableMapping[bytes, Any],
    actors: Actors,
    retry: RetryConfig,
    feed: TrainerFeed | None = None,
) -> None:
    """Forget records (in stream order) -> the users' states removed and their training
    samples dropped (after ``feed`` has handed over every sample served before them); a
    record whose samples could not be dropped -> a dead letter."""
    # [KeyedForget] -> [user_id]
    user_ids = list(dict.fromkeys(f.forget.user_id for f in forgets))
    removed = remove_states(users, user_ids)
    dropped = 0
    if actors.trainer is not None:
        trainer = actors.trainer
        if feed is not None:
            await feed.drain()
        try:
            dropped = await call_until_done(
                partial(trainer.forget.remote, user_ids), retry, what="forget samples"
            )
        except (GaveUp, InputFailed) as exc:
            reason = f"forget incomplete (state removed, samples not): {describe(exc)}"
            for f in forgets:
                letter = deadletters.from_source(f.source, reason, f.forget.model_dump_json())
                await deadletters.send(topics.dead_letters, letter, deadletters.FAILED)
            return
    log.info(
        "forgot %d users: %d states removed, %d training samples dropped",
        len(user_ids),
        removed,
        dropped,
    )
