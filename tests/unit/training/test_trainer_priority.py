"""The training thread runs below serving's CPU priority (Linux nice is per thread), and
only that thread: the actor's other threads keep theirs."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from workers.trainer_service import lower_priority

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def _nice_after(nice: int) -> int:
    """The niceness a fresh thread has after ``lower_priority(nice)``."""
    seen: list[int] = []

    def run() -> None:
        lower_priority(nice)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


def test_the_calling_thread_alone_is_lowered() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _nice_after(10) == min(19, mine + 10)
    assert _nice_after(0) == mine
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    assert _nice_after(19) == 19  # capped at the lowest priority
