"""The fetch wait follows the traffic: short while fetches return records, the long
bound once none came for that long, and the hook sets it on a fetcher after each fetch."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.fetch_wait import FetchWait, follow_traffic


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_short_while_records_flow_long_once_idle_for_the_long_bound() -> None:
    clock = _Clock()
    wait = FetchWait(busy_ms=5, idle_ms=100, clock=clock)
    assert wait.after(False) == 100  # nothing seen yet: idle
    assert wait.after(True) == 5
    clock.now = 0.099
    assert wait.after(False) == 5  # records 99 ms ago: still flowing
    clock.now = 0.101
    assert wait.after(False) == 100  # none for longer than the long bound
    assert wait.after(True) == 5


def test_a_busy_wait_above_the_idle_one_is_capped() -> None:
    assert FetchWait(busy_ms=500, idle_ms=100).after(True) == 100


class _Fetcher:
    """The two members of aiokafka's Fetcher the hook touches."""

    def __init__(self, answers: list[bool]) -> None:
        self._fetch_max_wait_ms = 100
        self.answers = answers
        self.asked: list[Any] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        self.asked.append((assignment, node_id, request))
        return self.answers.pop(0)


def test_the_fetcher_sets_its_next_wait_after_each_fetch() -> None:
    fetcher = _Fetcher([True, False])
    follow_traffic(fetcher, FetchWait(busy_ms=5, idle_ms=100, clock=_Clock()))

    async def run() -> list[tuple[bool, int]]:
        seen = []
        for n in range(2):
            got = await fetcher._proc_fetch_request("assignment", 1, f"request {n}")
            seen.append((got, fetcher._fetch_max_wait_ms))
        return seen

    assert asyncio.run(run()) == [(True, 5), (False, 5)]  # the clock stood still
    assert fetcher.asked == [("assignment", 1, "request 0"), ("assignment", 1, "request 1")]
