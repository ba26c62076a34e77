"""End to end through real processes: Kafka-protocol broker, Faust worker, Ray, LM, Qdrant."""

from __future__ import annotations

from typing import Any

import pytest

from streams.schemas import Recommendation
from tests.integration import themes
from tests.integration.helpers import (
    event,
    item,
    read,
    recommendations_for,
    send,
    send_events,
    send_items,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def themed_catalog(scenario: str) -> dict[str, list[dict[str, Any]]]:
    """{theme: [item record]} with ids unique to this scenario."""
    out = {}
    for theme, texts in (
        ("space", themes.SPACE),
        ("cooking", themes.COOKING),
        ("garden", themes.GARDEN),
    ):
        out[theme] = [item(f"{scenario}-{theme}-{n}", t, scenario) for n, t in enumerate(texts)]
    return out


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["item_id"] for r in records]


def test_every_event_gets_exactly_one_recommendation(stack, shared_data) -> None:
    from tooling.datasets import load_ml_latest

    scenario = unique("ml")
    data = load_ml_latest(shared_data / "ml-latest-small", scenario=scenario)
    users = sorted({e["user_id"] for e in data.events[:3000]})[:8]
    events = [e for e in data.events if e["user_id"] in users][:160]
    wanted = {e["item_id"] for e in events}
    # The users' items plus 300 others, with scenario-unique ids.
    catalog = [i for n, i in enumerate(data.items) if n < 300 or i["item_id"] in wanted]
    for record in [*catalog, *events]:
        record["item_id"] = f"{scenario}-{record['item_id']}"
    for e in events:
        e["user_id"] = f"{scenario}-{e['user_id']}"
        e["event_id"] = f"{scenario}-{e['event_id']}"
    send_items(stack, catalog)
    send_events(stack, events)

    recs = recommendations_for(stack, {e["event_id"] for e in events})

    assert len(recs) == len(events)
    assert all(len(found) == 1 for found in recs.values()), "a clean run duplicates nothing"
    history: dict[str, set[str]] = {}
    catalog_ids = {i["item_id"] for i in catalog}
    for e in events:  # time order per user = production order
        history.setdefault(e["user_id"], set()).add(e["item_id"])
        [msg] = recs[e["event_id"]]
        rec = Recommendation.model_validate(msg.value)  # every contract field, strictly typed
        assert msg.key == e["user_id"]
        assert rec.user_id == e["user_id"] and rec.scenario == scenario
        assert rec.model_version == 0
        assert rec.latency_ms >= 0
        got = [i.item_id for i in rec.items]
        assert len(got) == 10
        assert not set(got) & history[e["user_id"]], "recommended an item the user already has"
        assert set(got) <= catalog_ids, "recommended outside the event's scenario"
        scores = [i.score for i in rec.items]
        assert scores == sorted(scores, reverse=True)


def test_brand_new_item_is_recommended_before_any_interaction(stack) -> None:
    scenario = unique("cold")
    catalog = themed_catalog(scenario)
    send_items(stack, catalog["space"][:5] + catalog["cooking"] + catalog["garden"])
    user = unique("u")
    warmup = [
        event(unique("e"), user, i, 1000.0 + n, scenario)
        for n, i in enumerate(ids(catalog["space"][:4]))
    ]
    send_events(stack, warmup)
    recommendations_for(stack, {e["event_id"] for e in warmup})

    new_id = f"{scenario}-brand-new"
    send_items(stack, [item(new_id, themes.NEW_SPACE_ITEM, scenario)])
    probe = event(unique("e"), user, catalog["space"][4]["item_id"], 2000.0, scenario)
    send_events(stack, [probe])

    [msg] = recommendations_for(stack, {probe["event_id"]})[probe["event_id"]]
    got = [i["item_id"] for i in msg.value["items"]]
    assert got[0] == new_id, f"the new space item should lead a space fan's list, got {got}"


def test_malformed_records_are_dead_lettered_and_the_stream_goes_on(stack) -> None:
    scenario = unique("bad")
    catalog = themed_catalog(scenario)
    send_items(stack, catalog["cooking"])
    user = unique("u")
    good_before = event(unique("e"), user, catalog["cooking"][0]["item_id"], 1.0, scenario)
    good_after = event(unique("e"), user, catalog["cooking"][1]["item_id"], 2.0, scenario)
    marker = unique("marker")
    bad: list[tuple[bytes, Any, str]] = [
        (b"k1", f"not json {marker}".encode(), "JSON"),
        (b"k2", {"user_id": user, "ts": 1.0, "m": marker}, "item_id"),  # missing field
        (b"k3", {"user_id": user, "item_id": 7, "ts": "soon", "m": marker}, "valid string"),
        (b"k4", {"user_id": "", "item_id": "x", "ts": 1.0, "m": marker}, "at least 1"),
        (b"k5", {"user_id": user, "item_id": "x", "ts": 1.0, "weight": -1, "m": marker}, "weight"),
        (b"k6", [1, 2, marker], "dictionary"),
    ]
    send(
        stack,
        stack.kafka.topics.events,
        [(user.encode(), good_before)]
        + [(k, v) for k, v, _ in bad]
        + [(user.encode(), good_after)],
    )
    bad_item = {"item_id": f"{scenario}-no-text", "scenario": scenario, "m": marker}
    send(stack, stack.kafka.topics.items, [(b"i1", bad_item)])

    recs = recommendations_for(stack, {good_before["event_id"], good_after["event_id"]})
    assert set(recs) == {good_before["event_id"], good_after["event_id"]}

    letters = read(
        stack,
        stack.kafka.topics.dead_letters,
        lambda seen: sum(marker in r.value["raw"] for r in seen) >= len(bad) + 1,
    )
    mine = [r.value for r in letters if marker in r.value["raw"]]
    assert len(mine) == len(bad) + 1
    by_key = {d["key"]: d for d in mine}
    for key, _, reason in bad:
        letter = by_key[key.decode()]
        assert letter["topic"] == stack.kafka.topics.events
        assert reason in letter["error"], letter
        assert letter["offset"] >= 0 and letter["partition"] >= 0
    assert "text" in by_key["i1"]["error"] and by_key["i1"]["topic"] == stack.kafka.topics.items


def test_event_for_an_unknown_item_is_served_and_counts_once_the_item_arrives(stack) -> None:
    scenario = unique("race")
    catalog = themed_catalog(scenario)
    send_items(stack, catalog["space"][1:] + catalog["cooking"])
    user = unique("u")
    late_id = f"{scenario}-late"  # its catalog record arrives after the user's event on it
    first = [
        event(unique("e"), user, catalog["cooking"][0]["item_id"], 1.0, scenario),
        event(unique("e"), user, catalog["cooking"][1]["item_id"], 2.0, scenario),
        event(unique("e"), user, late_id, 3.0, scenario),
    ]
    send_events(stack, first)
    before = recommendations_for(stack, {e["event_id"] for e in first})
    [unknown_rec] = before[first[2]["event_id"]]
    served = [i["item_id"] for i in unknown_rec.value["items"]]
    assert len(served) == 10, "an unknown item still gets a recommendation from the user's state"

    send_items(stack, [item(late_id, themes.SPACE[0], scenario)])
    probe = event(unique("e"), user, f"{scenario}-also-unknown", 4.0, scenario)
    send_events(stack, [probe])
    [after_rec] = recommendations_for(stack, {probe["event_id"]})[probe["event_id"]]
    after = [i["item_id"] for i in after_rec.value["items"]]

    space = set(ids(catalog["space"]))
    assert late_id not in after, "the late item is in the user's history: never recommended"
    assert len(space & set(after)) > len(space & set(served)), (
        "once its record arrived, the late space item should pull space items in: "
        f"before {served}, after {after}"
    )


def test_readme_example_runs_against_the_pipeline(stack) -> None:
    """The README's kafka-python example is executable documentation: run it as written."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "produce_and_consume.py"
    done = subprocess.run(
        [sys.executable, str(example), "--bootstrap", stack.broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("recommendations for alice-")
    # Alice watched the Moon film: the Mars film (space) outranks the cooking one.
    assert lines[1].split()[0].startswith("mars-"), done.stdout
