"""Markdown tables of evaluation results, with peers' published numbers beside them.

In: our results (model name -> :class:`~workers.evaluation.metrics.RankingMetrics`)
and, optionally, peers' numbers as parsed by :func:`parse_peers` from the markdown of
``shared/data/PEERS.md`` (section -> model -> column -> value). Out: markdown text.
Nothing is read from or written to disk here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from workers.evaluation.metrics import RankingMetrics

Peers = dict[str, dict[str, dict[str, float]]]


def parse_peers(markdown: str) -> Peers:
    """Every markdown table whose header's first cell names a dataset, e.g.
    ``| ML-100K (943 users, ...) | Recall@10 | ...``: dataset (the text before `` (``)
    -> model (first cell) -> column -> value, for the cells that parse as numbers."""
    peers: Peers = {}
    section: dict[str, dict[str, float]] | None = None
    columns: list[str] = []
    for line in markdown.splitlines():
        text = line.strip()
        if not text.startswith("|"):
            section = None
            continue
        cells = [c.strip() for c in text.strip("|").split("|")]
        if section is None:
            dataset = cells[0].split(" (")[0].strip()
            section = peers.setdefault(dataset, {})
            columns = cells[1:]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the |---|---| row
        values: dict[str, float] = {}
        for column, cell in zip(columns, cells[1:], strict=False):
            try:
                values[column] = float(cell.replace(",", ""))
            except ValueError:
                continue
        section[cells[0]] = values
    return peers


def render(
    results: Mapping[str, RankingMetrics],
    peers: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """One row per model: our Recall/NDCG/MRR/Precision/F1/Coverage @K and, where
    ``peers`` (model -> column, e.g. ``"Recall@10"``; matched case-insensitively) has
    the model, the peer's Recall/NDCG/MRR @K beside them. Peer-only models follow."""
    peer_rows = {name.lower(): (name, row) for name, row in (peers or {}).items()}
    k = next(iter(results.values())).k if results else 10
    names = ("Recall", "NDCG", "MRR")
    header = [
        "model",
        *(f"{n}@{k}" for n in (*names, "Precision", "F1", "Coverage")),
        *(f"peer {n}@{k}" for n in names),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, m in results.items():
        _, peer = peer_rows.pop(model.lower(), (model, {}))
        ours = [m.recall, m.ndcg, m.mrr, m.precision, m.f1, m.coverage]
        theirs = [peer.get(f"{n}@{k}") for n in names]
        lines.append(_row(model, [*ours, *theirs]))
    for name, peer in peer_rows.values():
        blank: list[float | None] = [None] * 6
        lines.append(_row(name, blank + [peer.get(f"{n}@{k}") for n in names]))
    return "\n".join(lines) + "\n"


def _row(name: str, values: Sequence[float | None]) -> str:
    cells = ["" if v is None else f"{v:.4f}" for v in values]
    return "| " + " | ".join([name, *cells]) + " |"
