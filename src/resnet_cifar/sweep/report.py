"""A sweep's results: ``sweep.md``, ``sweep.json`` and figures, from the study and its trials' run folders."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..config_options import settings_as_options
from ..errors import ResnetCifarError
from ..experiments.report import markdown_table
from ..files import atomic_write_json
from ..plots import save_figure
from ..training.callbacks import read_metrics_csv
from .study import import_optuna


def reproducing_command(study: Any, params: dict[str, Any]) -> str:
    """The ``resnet-cifar train`` command of a trial: the sweep's train options with the trial's settings."""
    settings = {**study.user_attrs.get("train_settings", {}), **params}
    options = settings_as_options(settings) + study.user_attrs.get("model_flags", [])
    return shlex.join(["resnet-cifar", "train", *options])


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One record per trial: number, state, value, settings, epochs run and planned, wall seconds, run folder."""
    records = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        records.append({"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
                        "params": trial.params, "epochs": attrs.get("epochs"),
                        "planned_epochs": attrs.get("planned_epochs"), "wall_seconds": attrs.get("wall_seconds"),
                        "stopped_at_budget": attrs.get("stopped_at_budget", False),
                        "run_folder": attrs.get("run_folder"), "error": attrs.get("error")})
    return records


def pruning_savings(records: list[dict[str, Any]], budget_minutes: float | None = None) -> dict[str, float]:
    """Wall seconds the sweep spent, and an estimate of those pruning saved: each pruned trial's remaining epochs
    at its own mean epoch time, as many as the time budget would have let it train (the sweep stops a trial
    before an epoch that would end past the budget)."""
    spent = sum(r["wall_seconds"] or 0.0 for r in records)
    saved = 0.0
    for r in records:
        if r["state"] != "pruned" or not r["epochs"]:
            continue
        epoch_seconds = r["wall_seconds"] / r["epochs"]
        remaining = r["planned_epochs"] - r["epochs"]
        if budget_minutes is not None:
            remaining = min(remaining, int((60 * budget_minutes - r["wall_seconds"]) // epoch_seconds))
        saved += max(remaining, 0) * epoch_seconds
    return {"spent_seconds": spent, "saved_seconds": saved,
            "saved_share": saved / (spent + saved) if spent + saved else 0.0}


def write_report(study: Any, out: Path) -> dict[str, Any]:
    """Write ``sweep.md``, ``sweep.json``, ``history.png``, ``importances.png`` and ``minutes.png`` into ``out``;
    return the report."""
    optuna = import_optuna()
    records = trial_rows(study)
    complete = [r for r in records if r["state"] == "complete"]
    if not complete:
        raise ResnetCifarError(f"the study {study.study_name!r} has no finished trial yet: nothing to report")
    best = study.best_trial
    report = {"study": study.study_name, "metric": study.user_attrs.get("metric", "val_acc"),
              "best": {"number": best.number, "value": best.value, "params": best.params,
                       "command": reproducing_command(study, best.params)},
              "pruning": pruning_savings(records, study.user_attrs.get("budget_minutes")), "trials": records}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", report)
    (out / "sweep.md").write_text(_markdown(report))
    from optuna.visualization import matplotlib as optuna_plots

    save_figure(optuna_plots.plot_optimization_history(study).figure, out / "history.png")
    if len(complete) >= 2 and study.best_trial.params:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # no scikit-learn needed, unlike fANOVA
        save_figure(optuna_plots.plot_param_importances(study, evaluator=evaluator).figure, out / "importances.png")
    _plot_minutes(records, report["metric"], out / "minutes.png")
    return report


def _markdown(report: dict[str, Any]) -> str:
    metric, best, pruning = report["metric"], report["best"], report["pruning"]
    headers = ["trial", "state", metric, "epochs", "minutes", "settings"]
    rows = [[str(r["number"]), r["state"] + (" (budget)" if r["stopped_at_budget"] else ""),
             "-" if r["value"] is None else f"{100 * r['value']:.2f}%",
             f"{r['epochs'] or 0}/{r['planned_epochs'] or '-'}",
             "-" if r["wall_seconds"] is None else f"{r['wall_seconds'] / 60:.1f}",
             ", ".join(f"{k}={_shown(v)}" for k, v in r["params"].items()) or (r["error"] or "")]
            for r in report["trials"]]
    return (f"# Sweep {report['study']}\n\nBest: trial {best['number']}, {metric} {100 * best['value']:.2f}%:\n\n"
            f"    {best['command']}\n\n{markdown_table(headers, rows)}\n\n"
            f"Training time: {pruning['spent_seconds'] / 60:.1f} min; pruning saved about "
            f"{pruning['saved_seconds'] / 60:.1f} min ({100 * pruning['saved_share']:.0f}% of what the trials would "
            f"have taken unpruned).\n")


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plot_minutes(records: list[dict[str, Any]], metric: str, path: Path) -> None:
    """Each trial's metric against its wall-clock minutes, pruned trials dashed."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for record in records:
        rows = read_metrics_csv(Path(record["run_folder"])) if record["run_folder"] else []
        if not rows or not rows[0].get(metric):
            continue
        minutes = [float(row["wall_seconds"]) / 60 for row in rows]
        values = [100 * float(row[metric]) for row in rows]
        axes.plot(minutes, values, "--" if record["state"] == "pruned" else "-", alpha=0.8,
                  label=f"trial {record['number']} ({record['state']})")
    axes.set(xlabel="wall-clock minutes", ylabel=f"{metric} (%)", title="trials against time")
    axes.grid(alpha=0.3)
    if len(records) <= 20:
        axes.legend(fontsize=7)
    save_figure(figure, path)

