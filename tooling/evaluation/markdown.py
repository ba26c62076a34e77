"""Markdown building blocks of the evaluation report: cells and pipe tables.

``MISSING`` ("—") marks a value that was not measured; numbers are written with a
fixed number of decimals so the same input always renders the same text.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "—"


def cell(value: object, decimals: int = 4) -> str:
    """A table cell: floats with ``decimals`` decimals, None as ``MISSING``, other values
    as text with ``|`` escaped and newlines flattened."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a pipe table; every row must have ``len(header)`` cells."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells, header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines
