"""The evaluation report: our rows and the peers' rows with the right numbers in one
table, every section, honest sentences for what was not run, deterministic text."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tooling.evaluation import (
    COLD_START_SLICES,
    Evaluation,
    ModelResult,
    Observation,
    RankingMetrics,
    StreamRun,
    Transfer,
    leave_one_out,
    parse_peer_notes,
    parse_peers,
    prequential,
    render_evaluation,
    split_sizes,
)

PEERS_MD = """Some text.

| DS (3 users, 5 items) | Recall@10 | NDCG@10 | MRR@10 | epochs | note |
|---|---|---|---|---|---|
| Pop | 0.0764 | 0.0377 | 0.0258 | 1 | |
| GRU4Rec | 0.0986 | 0.0474 | 0.0318 | 12 | hit the budget; not converged |
"""
COLD, RARE, USERS = (s.name for s in COLD_START_SLICES)


def m(users: int, recall: float, ndcg: float, mrr: float, k: int = 10) -> RankingMetrics:
    return RankingMetrics(k, users, recall, ndcg, mrr, recall / k, 2 * recall / (k + 1), 0.25)


ONLINE = ModelResult(
    "streamrec online",
    test=m(943, 0.1234, 0.0612, 0.0420),
    valid=m(943, 0.13, 0.065, 0.045),
    test_slices={COLD: m(0, 0, 0, 0), RARE: m(12, 0.25, 0.125, 0.0833), USERS: m(3, 0, 0, 0)},
)
POP = ModelResult("Pop", test=m(943, 0.0859, 0.0449, 0.0326))
STREAM = StreamRun(
    "streamrec online",
    prequential(
        [
            Observation("u", "a", None),
            Observation("u", "a", ["a"], "1", ts=1.0, served_at=0),
            Observation("u", "b", ["x"], "1", ts=2.0, served_at=1),
            Observation("u", "c", ["x", "c"], "2", ts=3.0, served_at=2),
        ],
        k=10,
        window=2,
    ),
    latencies_ms=[float(x) for x in range(101)],
)
TRANSFER = Transfer("books", "movies", m(50, 0.10, 0.05, 0.04), m(50, 0.08, 0.045, 0.03))


def full(**changes: Any) -> Evaluation:
    peers = parse_peers(PEERS_MD)["DS"]
    e = Evaluation(
        dataset="DS",
        seed=2020,
        split_sizes=[("users", 943), ("items", 1682)],
        settings=[("adapter lr", 1e-5), ("note | pipe", "a|b")],
        models=[ONLINE, POP],
        peers=peers,
        peer_notes=parse_peer_notes(PEERS_MD)["DS"],
        streams=[STREAM],
        transfers=[TRANSFER],
        plots=[("prequential HR@10", "plots/prequential.png"), ("latency", "my plots/l.png")],
        notes="Measured on the project's 2-core machine.",
    )
    return dataclasses.replace(e, **changes)


def section(text: str, title: str) -> list[str]:
    """The lines of the ``## title...`` section, without its heading."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"## {title}"))
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), None)
    return lines[start + 1 : end]


def test_test_table_has_ours_and_peers_rows_with_their_numbers() -> None:
    rows = [line for line in section(render_evaluation(full()), "Test targets") if "|" in line]
    assert rows[0] == (
        "| model | source | users | Recall@10 | NDCG@10 | MRR@10 | Precision@10 | F1@10"
        " | Coverage@10 | note |"
    )
    assert rows[2:] == [  # one table: ours, then the peers (— where they report nothing)
        "| streamrec online | this run | 943 | 0.1234 | 0.0612 | 0.0420 | 0.0123 | 0.0224"
        " | 0.2500 |  |",
        "| Pop | this run | 943 | 0.0859 | 0.0449 | 0.0326 | 0.0086 | 0.0156 | 0.2500 |  |",
        "| Pop | RecBole 1.2.1 (PEERS.md) | — | 0.0764 | 0.0377 | 0.0258 | — | — | — |  |",
        "| GRU4Rec | RecBole 1.2.1 (PEERS.md) | — | 0.0986 | 0.0474 | 0.0318 | — | — | — |"
        " hit the budget; not converged |",
    ]


def test_every_section_with_its_numbers() -> None:
    text = render_evaluation(full())
    assert text.startswith("# streamrec evaluation: DS\n")
    setup = section(text, "Setup")
    assert "- seed: 2020" in setup and "| items | 1682 |" in setup
    assert "| adapter lr | 1e-05 |" in setup and "| note \\| pipe | a\\|b |" in setup
    valid = section(text, "Validation targets")
    ours = "| streamrec online | 943 | 0.1300 | 0.0650 | 0.0450 | 0.0130 | 0.0236 | 0.2500 |"
    assert ours in valid
    assert "Not measured for: Pop." in valid
    slices = section(text, "Cold-start slices")
    assert "- **rare items (<5 train)**: target item with < 5 training interactions" in slices
    assert "| streamrec online | cold items (0 train) | 0 | — | — | — | — | — | — |" in slices
    assert any(line.startswith("| streamrec online | rare items (<5 train) | 12 | 0.2500 |")
               for line in slices)  # fmt: skip
    assert "Not computed for: Pop." in slices
    assert "Not computed for the validation targets." in slices
    prequential_lines = section(text, "Prequential")
    assert "| streamrec online | 1 | 1 | 2 | 0.5000 | 0.5000 |" in prequential_lines
    assert "| streamrec online | 2 | 3 | 1 | 1.0000 | 0.6309 |" in prequential_lines
    assert "| streamrec online | all | — | 3 | 0.6667 | 0.5436 |" in prequential_lines
    assert "| 2-3 | 2 | 0.5000 | 0.5000 | 1 (2) |" in prequential_lines
    assert "| 4-4 | 1 | 1.0000 | 0.6309 | 2 (1) |" in prequential_lines
    latency = "| streamrec online | 101 | 50.0 | 50.0 | 95.0 | 99.0 | 100.0 |"
    assert latency in section(text, "Serving")
    assert "## Serving latency (ms per recommendation, nearest-rank percentiles)" in text
    transfer = "\n".join(section(text, "Cross-scenario transfer"))
    assert "| movies | from books's shared part | 50 | 0.1000 | 0.0500 | 0.0400 |" in transfer
    assert "| movies | from scratch | 50 | 0.0800 | 0.0450 | 0.0300 |" in transfer
    assert "| movies | difference (shared - scratch) | — | +0.0200 | +0.0050 | +0.0100 |" in (
        transfer
    )
    plots = section(text, "Plots")
    assert "![prequential HR@10](plots/prequential.png)" in plots
    assert "![latency](<my plots/l.png>)" in plots
    assert section(text, "Notes") == ["", "Measured on the project's 2-core machine."]


def test_missing_parts_render_as_sentences() -> None:
    bare = Evaluation(dataset="DS", seed=1, split_sizes=(), settings=())
    text = render_evaluation(bare)
    for sentence in (
        "Split sizes were not recorded.",
        "No settings were recorded.",
        "Not measured: no model results were given.",
        "No peer numbers were given for this dataset.",
        "Not measured: no model was scored on the validation targets.",
        "Not computed: no model results were given.",
        "No stream replay was run: no prequential metrics.",
        "No stream replay was run: no latencies.",
        "Cross-scenario transfer was not run.",
        "No plots were produced.",
        "No notes were given.",
    ):
        assert sentence in text
    assert "|" not in text  # not one (empty) table
    some = render_evaluation(full(peers=None, transfers=(), plots=()))
    assert "No peer numbers were given for this dataset." in some
    assert "Cross-scenario transfer was not run." in some and "scenario B" not in some
    silent = dataclasses.replace(STREAM, latencies_ms=())
    assert "No latencies were recorded." in render_evaluation(full(streams=[silent]))


def test_deterministic() -> None:
    assert render_evaluation(full()) == render_evaluation(full())
    assert render_evaluation(full()).endswith("2-core machine.\n")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": [ONLINE, dataclasses.replace(POP, test=m(9, 0, 0, 0, k=5))]}, "@5"),
        ({"models": [POP, POP]}, "distinct"),
        ({"plots": [("p", "/tmp/p.png")]}, "relative"),
        ({"plots": [("p", "C:\\plots\\p.png")]}, "relative"),
        ({"slices": COLD_START_SLICES[:1]}, "not among Evaluation.slices"),
        ({"streams": [dataclasses.replace(STREAM, latencies_ms=[1.0, -2.0])]}, "finite"),
        ({"transfers": [dataclasses.replace(TRANSFER, from_scratch=m(1, 0, 0, 0, k=20))]}, "@20"),
        ({"k": 5}, "@10"),
    ],
)
def test_inconsistent_input_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        full(**changes)


def test_split_sizes() -> None:
    events = [{"user_id": u, "item_id": i} for u, i in ("1a", "1b", "1c", "2a", "2d")]
    assert split_sizes(leave_one_out(events)) == (
        ("users", 2), ("items", 4), ("training events", 3), ("validation targets", 1),
        ("test targets", 1),
    )  # fmt: skip


def test_real_peers_file(shared_data: Path) -> None:
    markdown = (shared_data / "PEERS.md").read_text(encoding="utf-8")
    peers, notes = parse_peers(markdown), parse_peer_notes(markdown)
    assert peers["ML-100K"]["ItemKNN"]["NDCG@10"] == 0.0619
    assert "not converged" in notes["ML-100K"]["SASRec"] and "Pop" not in notes["ML-100K"]
    text = render_evaluation(
        full(dataset="ML-100K", peers=peers["ML-100K"], peer_notes=notes["ML-100K"])
    )
    peer = "| ItemKNN | RecBole 1.2.1 (PEERS.md) | — | 0.1124 | 0.0619 | 0.0466 | — | — | — |"
    assert peer in text
