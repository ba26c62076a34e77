"""SIGTERM to a command that starts processes unwinds it, so its cleanup runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, signal, sys, time
from streams.cli import exit_on_sigterm
if sys.argv[2] == "handled":
    exit_on_sigterm()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
finally:
    open(sys.argv[1], "w").write("stopped")
"""


def run(tmp_path: Path, mode: str) -> tuple[int, bool]:
    marker = tmp_path / mode
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), mode], timeout=60, check=False
    )
    return done.returncode, marker.exists()


def test_sigterm_runs_the_finally_blocks(tmp_path: Path) -> None:
    assert run(tmp_path, "handled") == (143, True)  # 128 + SIGTERM, cleanup ran
    assert run(tmp_path, "default") == (-15, False)  # Python's default: nothing runs
