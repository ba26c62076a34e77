"""The training rounds' log beside the published versions: every gate decision, kept.

    root/rounds.jsonl   one JSON object per training round, oldest first:
                        {"round", "time", "samples_seen", "accepted", "version",
                         "live_score", "candidate_score", "frozen_score",
                         "gate_samples", "loss", "steps", ...}

A round that trained nothing (``steps`` 0: no cached vectors yet, or every new sample
held out for the gate) is logged too, so the log accounts for every due round; readers
of the gate's decisions skip it (``read_rounds(..., empty=False)``, the default).

Written by the catalog (the owner of ``root``) for the trainer, read by operators and by
`streamrec eval` (gate decisions over stream time). Bounded: past ``MAX_ROUNDS`` lines
the oldest half is dropped. NaN scores (no gate) are written as null.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROUNDS_NAME = "rounds.jsonl"
MAX_ROUNDS = 20_000


def append_round(root: str | os.PathLike[str], entry: Mapping[str, Any]) -> None:
    """Append one round's entry (numbers that are not finite become null)."""
    path = Path(root) / ROUNDS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in entry.items()
    }
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(clean, sort_keys=True) + "\n")
    if path.stat().st_size > MAX_ROUNDS * 120:  # cheap pre-check before counting lines
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_ROUNDS:
            keep = "\n".join(lines[-MAX_ROUNDS // 2 :]) + "\n"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(keep, encoding="utf-8")
            tmp.replace(path)


def read_rounds(root: str | os.PathLike[str], *, empty: bool = False) -> list[dict[str, Any]]:
    """Every logged round that trained (with ``empty``: those that did not too), oldest
    first (none when the log does not exist)."""
    path = Path(root) / ROUNDS_NAME
    if not path.is_file():
        return []
    rounds = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rounds if empty else [r for r in rounds if r.get("steps") != 0]
