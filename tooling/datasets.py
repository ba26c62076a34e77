"""Readers turning datasets into contract records (dicts), events in time order.

Formats: the JSONL contract (``items.jsonl``, ``events.jsonl``), MovieLens 100K
(``u.item``/``u.data``/``u.genre``) and MovieLens latest (``movies.csv``/``ratings.csv``).
Events are sorted by timestamp with ties kept in file order (a stable sort), the rule
the leave-one-out protocol of ``shared/data/README.md`` uses.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]


@dataclass
class Dataset:
    """A catalog and an event log in contract form (events sorted by ``ts``)."""

    name: str
    items: list[Record]
    events: list[Record] = field(default_factory=list)

    def titles(self) -> dict[str, str]:
        """item_id -> title for display (``attributes.title``, else the text)."""
        return {
            i["item_id"]: str((i.get("attributes") or {}).get("title") or i["text"])
            for i in self.items
        }


def sample_users(events: list[Record], users: int | None, seed: int) -> list[Record]:
    """The events (order kept) of ``users`` users drawn at random by ``seed`` (all: None)."""
    if users is None:
        return events
    everyone = sorted({str(e["user_id"]) for e in events})
    kept = set(random.Random(seed).sample(everyone, min(users, len(everyone))))
    return [e for e in events if str(e["user_id"]) in kept]


def _time_ordered(events: list[Record]) -> list[Record]:
    return sorted(events, key=lambda e: e["ts"])  # sorted() is stable


def _movie(item_id: str, title: str, genres: list[str], scenario: str) -> Record:
    genres = [g for g in genres if g and g not in ("unknown", "(no genres listed)")]
    text = f"{title}. Genres: {', '.join(genres)}." if genres else f"{title}."
    return {
        "item_id": item_id,
        "text": text,
        "scenario": scenario,
        "attributes": {"title": title, "genres": genres},
    }


def read_jsonl(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc


def load_jsonl(items: Path | None, events: Path | None, name: str = "jsonl") -> Dataset:
    """Contract-format JSONL files (either may be None)."""
    item_records = list(read_jsonl(items)) if items else []
    event_records = list(read_jsonl(events)) if events else []
    return Dataset(name, item_records, _time_ordered(event_records))


def load_ml100k(folder: Path, scenario: str = "default") -> Dataset:
    """MovieLens 100K: u.item (latin-1, ``|``-separated, 19 genre flags) and u.data."""
    genre_names = [
        line.split("|")[0]
        for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines()
        if line.strip()
    ]
    items = []
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        cols = line.split("|")
        flags = cols[5 : 5 + len(genre_names)]
        genres = [g for g, f in zip(genre_names, flags, strict=False) if f == "1"]
        items.append(_movie(cols[0], cols[1], genres, scenario))
    events = []
    with (folder / "u.data").open(encoding="latin-1") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            user, item, _rating, ts = line.split("\t")
            events.append(_event(f"ml100k-{number}", user, item, float(ts), scenario))
    return Dataset("ml-100k", items, _time_ordered(events))


def load_ml_latest(folder: Path, scenario: str = "default") -> Dataset:
    """MovieLens latest(-small): movies.csv and ratings.csv with headers."""
    with (folder / "movies.csv").open(encoding="utf-8", newline="") as handle:
        items = [
            _movie(row["movieId"], row["title"], row["genres"].split("|"), scenario)
            for row in csv.DictReader(handle)
        ]
    events = []
    with (folder / "ratings.csv").open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            events.append(
                _event(
                    f"mllatest-{number}",
                    row["userId"],
                    row["movieId"],
                    float(row["timestamp"]),
                    scenario,
                )
            )
    return Dataset(folder.name, items, _time_ordered(events))


def _event(event_id: str, user: str, item: str, ts: float, scenario: str) -> Record:
    # Ratings are treated as implicit feedback (an interaction), as in the literature's
    # leave-one-out protocol.
    return {"event_id": event_id, "user_id": user, "item_id": item, "ts": ts, "scenario": scenario}


def load(path: Path, scenario: str = "default") -> Dataset:
    """Guess the format from a folder's files."""
    if (path / "u.data").exists():
        return load_ml100k(path, scenario)
    if (path / "ratings.csv").exists():
        return load_ml_latest(path, scenario)
    items, events = path / "items.jsonl", path / "events.jsonl"
    if items.exists() or events.exists():
        return load_jsonl(items if items.exists() else None, events if events.exists() else None)
    raise ValueError(
        f"{path}: no dataset found (expected u.data+u.item, ratings.csv+movies.csv, "
        "or items.jsonl/events.jsonl)"
    )


def interleaved(events: list[Record], seed: int = 0) -> list[Record]:
    """``events`` in a random order (seeded), so users interleave as in a live stream of
    many users: nearly every event is a user of its own in its micro-batch, with a state
    to read and write. A dataset replayed in time order comes in bursts of one user
    (ML-100K: 0.03 users per event in batches of 256), which hides those costs."""
    mixed = list(events)
    random.Random(seed).shuffle(mixed)
    return mixed
