"""Results of an experiment: a Markdown table printed and written to results.md, the same data in results.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..engine.io import atomic_write_bytes, atomic_write_json


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with right-aligned columns after the first."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             + " |" for row in cells]
    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


def write_results(out: Path, title: str, table: str, data: dict[str, Any], settings: str) -> None:
    """results.md (title, table, settings) and results.json (``data``) in ``out``."""
    atomic_write_bytes(out / "results.md", f"# {title}\n\n{table}\n\n{settings}\n".encode())
    atomic_write_json(out / "results.json", data)


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"
