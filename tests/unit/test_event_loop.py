"""The worker's event loop setting: uvloop by default, the standard library's on request.

The choice is process-wide (an event loop policy), so each case runs in a process of
its own."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from streams.settings import Settings

PROBE = """
import asyncio, sys
from streams.worker import use_event_loop
use_event_loop(sys.argv[1])
loop = asyncio.new_event_loop()
print(type(loop).__module__.split(".")[0])
loop.close()
"""


def loop_made_after(name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, name], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_default_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMREC_EVENT_LOOP", raising=False)
    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("STREAMREC_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValidationError, match="event_loop"):
        Settings(event_loop="trio")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_every_later_loop_of_the_process_is_the_chosen_one(name: str, module: str) -> None:
    assert loop_made_after(name) == module
