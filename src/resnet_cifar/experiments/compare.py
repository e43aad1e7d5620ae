"""``experiment compare``: any registered models trained with one recipe, side by side (accuracy, size, cost, time),
or one model trained with several recipes (accuracy against wall-clock time)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..data.corruptions import SEVERITIES
from ..errors import ResnetCifarError
from ..models import model_spec
from ..training.recipes import recipe_config
from .figures import plot_comparison, plot_recipe_curves
from .report import markdown_table, minutes, percent, settings_line, show, write_results
from .runner import Finished, run_all


def compare(models: Sequence[str], *, recipe: str = "default", out: str | Path = "experiments/compare",
            quiet: bool = False, corruptions: Sequence[str] | None = None, severities: Sequence[int] = SEVERITIES,
            **settings: Any) -> list[Finished]:
    """Train each model with recipe ``recipe`` (``settings`` override it); tabulate and plot them in ``out``.
    ``corruptions`` (names or ``["all"]``) adds each model's mean corruption accuracy (``eval --corruptions``,
    written to ``eval.json`` in its run folder) and its relative mCE against the first model."""
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
    headers = ["model", "kind", "parameters", "MMACs", "test accuracy %", "training minutes", "s / epoch"]
    if corruptions is not None:
        headers += ["mean corruption accuracy %", f"relative mCE ({runs[0].name} = 100)"]
        for row, entry, report in zip(rows, data, _robustness(runs, corruptions, severities)):
            relative = report.get("relative_mce")
            row += [percent(report["mean_corruption_accuracy"]), "-" if relative is None else f"{100 * relative:.1f}"]
            entry["corruptions"] = {key: report.get(key) for key in ("mean_corruption_accuracy", "mce",
                                                                      "relative_mce", "precision")}
    plot_comparison(runs, sizes, out / "comparison.png")
    table = markdown_table(headers, rows)
    settings_text = (f"{settings_line(runs[0].config)} MMACs: millions of multiply-accumulates per image. "
                     f"Figure: comparison.png.")
    write_results(out, "Model comparison", table, {"recipe": recipe, "runs": data}, settings_text)
    show(f"\n{table}\n\nfigure and tables: {out}", quiet)
    return runs


def compare_recipes(model: str, recipes: Sequence[str], *, out: str | Path = "experiments/compare",
                    quiet: bool = False, **settings: Any) -> list[Finished]:
    """Train ``model`` with each recipe (``settings`` override every one); tabulate final accuracy, wall-clock
    time and the time each took to reach the first recipe's final accuracy, and plot accuracy against minutes."""
    if len(recipes) < 2 or len(set(recipes)) != len(recipes):
        raise ResnetCifarError("give two or more different recipes to compare (each once)")
    out = Path(out)
    runs = run_all({recipe: recipe_config(recipe, **{**settings, "model": model}) for recipe in recipes}, out,
                   quiet=quiet)
    target = runs[0].final["test_acc"]
    baseline_minutes = _wall_minutes(runs[0].history[-1])
    rows, data = [], []
    for run in runs:
        reached = next((row for row in run.history if row["test_acc"] >= target), None)
        reach_minutes = _wall_minutes(reached) if reached else None
        wall = _wall_minutes(run.final)
        rows.append([run.name, str(len(run.history)), str(run.config.batch_size), percent(run.final["test_acc"]),
                     f"{wall:.1f}", f"{reach_minutes:.1f}" if reached else "not reached",
                     f"{baseline_minutes / reach_minutes:.2f}x" if reached and reach_minutes else "-"])
        data.append({"recipe": run.name, "epochs": len(run.history), "batch_size": run.config.batch_size,
                     "test_acc": run.final["test_acc"], "wall_minutes": wall, "minutes_to_first_final": reach_minutes,
                     "curve": [{"epoch": row["epoch"], "wall_minutes": _wall_minutes(row), "test_acc": row["test_acc"]}
                               for row in run.history]})
    plot_recipe_curves(runs, target, out / "recipes.png")
    table = markdown_table(["recipe", "epochs", "batch", "test accuracy % (final epoch)", "wall minutes",
                            f"minutes to {percent(target)}%", "speed-up"], rows)
    text = (f"{model}, one seed ({runs[0].config.seed}); the final epoch's test accuracy counts (no selection on the "
            f"test set). Minutes are wall-clock (training, evaluation and checkpoints). \"minutes to\": when each "
            f"run first reached the final accuracy of {runs[0].name}, the first recipe; speed-up against its whole "
            f"run. Figure: recipes.png.")
    write_results(out, "Recipe comparison", table, {"model": model, "runs": data}, text)
    show(f"\n{table}\n\nfigure and tables: {out}", quiet)
    return runs


def _robustness(runs: list[Finished], corruptions: Sequence[str], severities: Sequence[int]) -> list[dict[str, Any]]:
    """Each run's corruption report (``eval --corruptions`` into its folder), relative to the first run's table."""
    from ..inference.evaluate import evaluate  # the corruptions need SciPy: only when asked for
    from ..inference.robustness import robustness_report

    reports = [evaluate(run.folder, corruptions=corruptions, severities=severities)["corruptions"] for run in runs]
    tables = [{name: {int(s): a for s, a in row.items()} for name, row in report["accuracy"].items()}
              for report in reports]
    reference = (reports[0]["clean_accuracy"], tables[0])
    return [robustness_report(report["clean_accuracy"], table, reference=reference, precision=report["precision"])
            for report, table in zip(reports, tables)]


def _wall_minutes(row: dict[str, Any]) -> float:
    """Wall-clock minutes since the run started, at the end of the epoch of metrics ``row``."""
    return float(row.get("wall_seconds") or row["elapsed_seconds"]) / 60
