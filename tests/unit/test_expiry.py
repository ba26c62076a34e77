"""Idle users expire: the pass over a worker's users (a dict standing in for the Faust
table; the worker test drives the real one through its changelog)."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.app import partition_of
from streams.expiry import expire_idle
from streams.user_state import decode_state, encode_state, seen_at
from workers.recommend_io import UserState

PARTITIONS = 4
DAY = 24 * 3600.0


def stored(seen: float) -> dict[str, Any]:
    return encode_state(UserState(history=["a"], weights=[1.0], events=1), seen=seen)


def run(users: dict[bytes, Any], owned: set[int], now: float) -> Any:
    return asyncio.run(
        expire_idle(users, owned=owned.__contains__, partitions=PARTITIONS, idle=DAY, now=now)
    )


def test_idle_owned_users_are_removed_and_the_rest_kept() -> None:
    now = 100 * DAY
    keys = [f"user-{n}".encode() for n in range(40)]
    users = {k: stored(now - (2 * DAY if n % 2 else DAY / 2)) for n, k in enumerate(keys)}
    owned = {0, 1}
    done = run(users, owned, now)
    idle_owned = {k for n, k in enumerate(keys) if n % 2 and partition_of(k, PARTITIONS) in owned}
    assert idle_owned and done.expired == len(idle_owned)
    assert set(users) == set(keys) - idle_owned  # another worker's idle users stay
    assert done.kept == len([k for k in users if partition_of(k, PARTITIONS) in owned])


def test_older_formats_are_stamped_then_expire_one_idle_period_later() -> None:
    old = {"history": [], "pending": [], "vector": None, "events": 0, "scenario": "default"}
    old |= {"version": 0, "format": 2, "weights": [], "recent_events": ["e"]}
    key = b"user-old"
    users: dict[bytes, Any] = {key: old, b"user-bad": {"format": 99}}
    every = set(range(PARTITIONS))
    done = run(users, every, now=10 * DAY)
    assert (done.stamped, done.expired, done.kept) == (1, 0, 1)  # the unreadable one is kept
    assert seen_at(users[key]) == 10 * DAY
    state = decode_state("user-old", users[key])
    assert state is not None and state.recent_events == ["e"]  # stamped, not changed
    assert run(users, every, now=10.5 * DAY).expired == 0
    assert run(users, every, now=11.5 * DAY).expired == 1 and key not in users
