"""``experiment compare``: any registered models trained with one recipe, side by side (accuracy, size, cost, time)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..engine.recipes import recipe_config
from ..errors import ResnetCifarError
from ..models import model_spec
from .figures import plot_comparison
from .report import markdown_table, minutes, percent, settings_line, show, write_results
from .runner import Finished, run_all


def compare(models: Sequence[str], *, recipe: str = "default", out: str | Path = "experiments/compare",
            quiet: bool = False, **settings: Any) -> list[Finished]:
    """Train each model with recipe ``recipe`` (``settings`` override it); tabulate and plot them in ``out``."""
    if len(set(models)) != len(models):
        raise ResnetCifarError("a model is listed twice: give each model once")
    out = Path(out)
    runs = run_all({name: recipe_config(recipe, **{**settings, "model": name}) for name in models}, out, quiet=quiet)
    rows, data, sizes = [], [], []
    for run in runs:
        params, macs = run.model_cost()
        accuracy = run.final["test_acc"]
        per_epoch = run.train_seconds / len(run.history)
        kind = model_spec(run.config.model).family
        rows.append([run.name, kind, f"{params:,}", f"{macs / 1e6:,.1f}", percent(accuracy), minutes(run.train_seconds),
                     f"{per_epoch:.1f}"])
        data.append({"model": run.name, "kind": kind, "parameters": params, "macs": macs, "test_acc": accuracy,
                     "train_seconds": run.train_seconds, "epochs": len(run.history)})
        sizes.append(params)
    plot_comparison(runs, sizes, out / "comparison.png")
    table = markdown_table(["model", "kind", "parameters", "MMACs", "test accuracy %", "training minutes",
                            "s / epoch"], rows)
    settings_text = (f"{settings_line(runs[0].config)} MMACs: millions of multiply-accumulates per image. "
                     f"Figure: comparison.png.")
    write_results(out, "Model comparison", table, {"recipe": recipe, "runs": data}, settings_text)
    show(f"\n{table}\n\nfigure and tables: {out}", quiet)
    return runs
