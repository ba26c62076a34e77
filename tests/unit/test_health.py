"""The worker's readiness and liveness files, against actors that answer or do not."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from streams.settings import HealthConfig
from streams.worker import Health


class Call:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    def remote(self) -> Any:
        async def answer() -> int:
            if self.behaviour == "raise":
                raise ConnectionError("actor unreachable")
            if self.behaviour == "hang":
                await asyncio.sleep(60)
            return 1

        return answer()


def actors(behaviour: str) -> Any:
    recommender = type("R", (), {"catalog_version": Call(behaviour)})()
    return type("A", (), {"recommender": recommender})()


def health(tmp_path: Path, behaviour: str) -> Health:
    config = HealthConfig(interval=1.0, timeout=0.2)
    return Health(actors(behaviour), config, tmp_path / "ready", tmp_path / "alive")


def test_ready_only_once_started_and_while_the_actors_answer(tmp_path: Path) -> None:
    check = health(tmp_path, "answer")
    assert asyncio.run(check.check()) is False  # not consuming yet
    assert not (tmp_path / "ready").exists() and (tmp_path / "alive").exists()
    check.started = True
    assert asyncio.run(check.check()) is True
    assert (tmp_path / "ready").read_text() == str(os.getpid())
    check.actors = actors("raise")
    assert asyncio.run(check.check()) is False
    assert not (tmp_path / "ready").exists()
    check.actors = actors("hang")  # no answer within the timeout
    started = time.monotonic()
    assert asyncio.run(check.check()) is False
    assert time.monotonic() - started < 5
    check.actors = actors("answer")
    assert asyncio.run(check.check()) is True and (tmp_path / "ready").exists()


def test_every_check_moves_the_alive_file_and_clear_removes_both(tmp_path: Path) -> None:
    check = health(tmp_path, "raise")
    check.started = True
    asyncio.run(check.check())
    alive = tmp_path / "alive"
    os.utime(alive, (0, 0))
    asyncio.run(check.check())
    assert alive.stat().st_mtime > 1e9  # touched now, even with actors unreachable
    check.clear()
    assert not alive.exists() and not (tmp_path / "ready").exists()
