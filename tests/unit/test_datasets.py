"""Dataset readers against the real MovieLens files in ../shared/data, and JSONL files."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest

from tooling import datasets
from tooling.datasets import Dataset

TIED_USER = "532"  # in ml-100k, this user's last three ratings share one timestamp


@pytest.fixture(scope="module")
def ml100k(shared_data: Path) -> Dataset:
    return datasets.load(shared_data / "ml-100k")


@pytest.fixture(scope="module")
def ml_latest(shared_data: Path) -> Dataset:
    return datasets.load(shared_data / "ml-latest-small")


def line_number(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def by_user(data: Dataset) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = defaultdict(list)
    for event in data.events:
        out[str(event["user_id"])].append(event)
    return out


# --- MovieLens 100K -----------------------------------------------------------------


def test_ml100k_sizes(ml100k: Dataset) -> None:
    assert ml100k.name == "ml-100k"
    assert len(ml100k.items) == 1682
    assert len(ml100k.events) == 100000
    assert len({e["user_id"] for e in ml100k.events}) == 943
    assert len({e["event_id"] for e in ml100k.events}) == 100000


def test_ml100k_events_sorted_with_ties_in_file_order(ml100k: Dataset) -> None:
    keys = [(e["ts"], line_number(e["event_id"])) for e in ml100k.events]
    assert keys == sorted(keys)
    assert sum(a[0] == b[0] for a, b in itertools.pairwise(keys)) > 0  # ties exist


def test_ml100k_stable_sort_on_a_tied_user(ml100k: Dataset, shared_data: Path) -> None:
    lines = (shared_data / "ml-100k" / "u.data").read_text(encoding="latin-1").splitlines()
    own = [
        (n, line.split("\t")) for n, line in enumerate(lines) if line.split("\t")[0] == TIED_USER
    ]
    expected = [cols[1] for _, cols in sorted(own, key=lambda pair: int(pair[1][3]))]
    events = by_user(ml100k)[TIED_USER]
    assert events[-1]["ts"] == events[-2]["ts"]  # the case the rule is about
    assert [e["item_id"] for e in events] == expected
    assert line_number(str(events[-2]["event_id"])) < line_number(str(events[-1]["event_id"]))


def test_ml100k_first_line_becomes_an_event(ml100k: Dataset) -> None:
    first = next(e for e in ml100k.events if e["event_id"] == "ml100k-0")
    assert first == {
        "event_id": "ml100k-0",
        "user_id": "196",
        "item_id": "242",
        "ts": 881250949.0,
        "scenario": "default",
    }


def test_ml100k_item_text_has_title_and_genres(ml100k: Dataset) -> None:
    toy = ml100k.items[0]
    assert toy == {
        "item_id": "1",
        "text": "Toy Story (1995). Genres: Animation, Children's, Comedy.",
        "scenario": "default",
        "attributes": {
            "title": "Toy Story (1995)",
            "genres": ["Animation", "Children's", "Comedy"],
        },
    }
    assert ml100k.titles()["1"] == "Toy Story (1995)"
    for item in ml100k.items:
        assert item["text"].startswith(item["attributes"]["title"])
        assert "unknown" not in item["attributes"]["genres"]
    no_genre = next(i for i in ml100k.items if i["item_id"] == "1373")
    assert no_genre["text"] == "Good Morning (1971)."  # no empty "Genres: ." part


def test_ml100k_latin1_titles_are_decoded(ml100k: Dataset) -> None:
    titles = ml100k.titles()
    assert any("é" in t for t in titles.values())
    assert not any("\ufffd" in t for t in titles.values())


def test_scenario_is_applied_to_items_and_events(shared_data: Path) -> None:
    data = datasets.load(shared_data / "ml-100k", scenario="movies")
    assert {i["scenario"] for i in data.items} == {"movies"}
    assert {e["scenario"] for e in data.events} == {"movies"}


# --- MovieLens latest-small ---------------------------------------------------------


def test_ml_latest_sizes(ml_latest: Dataset) -> None:
    assert ml_latest.name == "ml-latest-small"
    assert len(ml_latest.items) == 9742
    assert len(ml_latest.events) == 100836
    assert len({e["user_id"] for e in ml_latest.events}) == 610
    keys = [(e["ts"], line_number(e["event_id"])) for e in ml_latest.events]
    assert keys == sorted(keys)


def test_ml_latest_items(ml_latest: Dataset) -> None:
    items = {i["item_id"]: i for i in ml_latest.items}
    assert items["11"]["attributes"]["title"] == "American President, The (1995)"  # quoted csv
    assert items["11"]["text"] == (
        "American President, The (1995). Genres: Comedy, Drama, Romance."
    )
    assert items["114335"]["attributes"]["genres"] == []  # "(no genres listed)"
    assert items["114335"]["text"] == "La cravate (1957)."


# --- format detection and JSONL -----------------------------------------------------


def test_load_rejects_a_folder_without_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="no dataset found"):
        datasets.load(tmp_path)


def write_jsonl(path: Path, records: list[object], extra: str = "") -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n" + extra, encoding="utf-8")
    return path


def test_load_picks_jsonl_and_sorts_events(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [{"item_id": "a", "text": "Ä movie"}])
    events = [
        {"user_id": "u", "item_id": "a", "ts": 3, "event_id": "late"},
        {"user_id": "u", "item_id": "a", "ts": 1, "event_id": "tie-1"},
        {"user_id": "v", "item_id": "a", "ts": 1, "event_id": "tie-2"},
    ]
    write_jsonl(tmp_path / "events.jsonl", events, extra="\n   \n")  # blank lines skipped
    data = datasets.load(tmp_path)
    assert data.name == "jsonl"
    assert data.items == [{"item_id": "a", "text": "Ä movie"}]
    assert [e["event_id"] for e in data.events] == ["tie-1", "tie-2", "late"]
    assert data.titles() == {"a": "Ä movie"}


def test_load_with_events_only(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "events.jsonl", [{"user_id": "u", "item_id": "a", "ts": 1}])
    data = datasets.load(tmp_path)
    assert data.items == []
    assert len(data.events) == 1


def test_load_jsonl_with_either_file_missing(tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "i.jsonl", [{"item_id": "a", "text": "t"}])
    assert datasets.load_jsonl(items, None).events == []
    assert datasets.load_jsonl(None, None).items == []


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u", "item_id": "a", "ts": 1}\n\n{broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"events\.jsonl:3: not JSON"):
        datasets.load_jsonl(None, path)
