"""Idle users expire: a periodic pass over the users this worker owns.

    timer, every expiry_interval ──► expire_idle(users) ──► del users[key]
                                       (a tombstone on the changelog: compaction drops it)

A worker only touches keys of the partitions actively assigned to it (its table also
holds standby copies of others' partitions, which their owners expire) and skips a pass
while a rebalance is under way. A state whose format does not say when it was written
(before format 3) is stamped with the pass's time, so it expires one idle period later.
An event that arrives while its user is being expired finds no state and starts over,
as a new user would; one whose batch is in flight writes its state back (nothing lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.app import Pipeline, by_user_topic_name, partition_of
from streams.user_state import StateFormatError, decode_state, encode_state, seen_at

log = logging.getLogger(__name__)

#: Keys handled between two yields to the event loop.
YIELD_EVERY = 500


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    expired: int
    stamped: int
    kept: int


async def expire_idle(
    users: MutableMapping[bytes, Any],
    *,
    owned: Callable[[int], bool],
    partitions: int,
    idle: float,
    now: float,
) -> Pass:
    """Remove the states of owned users last written more than ``idle`` seconds before
    ``now``; stamp states that do not say when (older formats) with ``now``."""
    expired = stamped = kept = 0
    for n, key in enumerate(list(users.keys())):
        if n and not n % YIELD_EVERY:
            await asyncio.sleep(0)  # the recommend agent keeps going meanwhile
        if not owned(partition_of(key, partitions)):
            continue
        value = users.get(key)
        if value is None:  # removed since the pass listed it
            continue
        seen = seen_at(value)
        if seen is None:
            try:
                state = decode_state(key.decode("utf-8", "replace"), value)
            except StateFormatError as exc:  # kept for its user's events to dead-letter
                log.warning("not expiring an unreadable state: %s", exc)
                kept += 1
                continue
            if state is not None:
                users[key] = encode_state(state, seen=now)
                stamped += 1
        elif now - seen > idle:
            del users[key]
            expired += 1
        else:
            kept += 1
    return Pass(expired, stamped, kept)


def register_expiry(pipeline: Pipeline) -> None:
    """A timer on every worker expiring its idle users (none when expiry is 0)."""
    config, app, users = pipeline.settings.users, pipeline.app, pipeline.users
    idle = config.idle_expiry
    if idle == 0:
        return
    topic = by_user_topic_name(pipeline.settings)
    partitions = pipeline.settings.kafka.partitions

    async def expire() -> None:
        if app.rebalancing:
            return
        actives = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
        done = await expire_idle(
            users, owned=actives.__contains__, partitions=partitions, idle=idle, now=time.time()
        )
        if done.expired or done.stamped:
            log.info(
                "idle users: %d expired, %d stamped, %d kept",
                done.expired,
                done.stamped,
                done.kept,
            )

    app.timer(config.expiry_interval, name="streamrec.expiry")(expire)
