"""Results of an experiment: a Markdown table printed and written to a .md file, the same data in a .json file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..core.distributed import world_from_environment
from ..files import atomic_write_bytes, atomic_write_json
from ..training.config import TrainConfig


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with right-aligned columns after the first."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             + " |" for row in cells]
    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


def write_results(out: Path, title: str, table: str, data: dict[str, Any], settings: str, *,
                  stem: str = "results") -> None:
    """``stem``.md (title, table, settings) and ``stem``.json (``data``) in ``out``: experiments that share one
    folder (and its runs) write under stems of their own."""
    atomic_write_bytes(out / f"{stem}.md", f"# {title}\n\n{table}\n\n{settings}\n".encode())
    atomic_write_json(out / f"{stem}.json", data)


def show(text: str, quiet: bool) -> None:
    """Print ``text`` unless ``quiet``; under torchrun from rank 0 only."""
    if not quiet and world_from_environment().is_main:
        print(text, flush=True)


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def settings_line(config: TrainConfig) -> str:
    """The settings an experiment's runs share, in one sentence for its results.md."""
    images = f"{config.train_subset} training images" if config.train_subset else "all training images"
    held_out = f" ({config.val_split} held out for validation)" if config.val_split else ""
    momentum = f" momentum {config.momentum}" if config.optimizer == "sgd" else ""
    schedule = (f"lr x{config.gamma} at epochs {config.milestones}" if config.schedule == "multistep"
                else f"{config.schedule} schedule")
    return (f"Settings: recipe {config.recipe}, {config.dataset}, {images}{held_out}, {config.epochs} epochs, batch "
            f"{config.batch_size}, {config.optimizer.upper()} lr {config.lr}{momentum} weight decay "
            f"{config.weight_decay}, {schedule}, seed {config.seed}, amp {config.amp}.")
