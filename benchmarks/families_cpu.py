"""One short training of each residual family at the same wall-clock budget: accuracy against minutes.

    python benchmarks/families_cpu.py --data-dir DATA --out DIR --budget-minutes 30 \\
        resnet9=4 wrn-16-4=4 preact-resnet18=3 seresnet18=3 resnext29-2x64d=1 resnet18=3 resnet20=28

Each MODEL=EPOCHS trains with the ``fast`` recipe at batch 128 (the CPU's, as its description says) on the full
data in DIR/MODEL, its one-cycle schedule planned over EPOCHS: choose EPOCHS so that the run ends near the budget
(from ``resnet-cifar bench`` training rates). An interrupted call continues where it stopped; finished runs are
reused. Writes DIR/results.md, DIR/results.json and DIR/families.png (test accuracy against wall-clock minutes).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnet_cifar.core.device import cpu_description
from resnet_cifar.core.threads import configure_threads
from resnet_cifar.experiments.figures import plot_recipe_curves
from resnet_cifar.experiments.report import markdown_table
from resnet_cifar.experiments.runner import Finished, run_all
from resnet_cifar.models import model_spec
from resnet_cifar.training.recipes import recipe_config


def parse_plan(items: list[str]) -> dict[str, int]:
    """``MODEL=EPOCHS`` arguments as a dict, in order."""
    plan = {}
    for item in items:
        name, _, epochs = item.partition("=")
        if not epochs.isdigit() or int(epochs) < 1:
            raise SystemExit(f"{item}: give MODEL=EPOCHS with a positive number of epochs")
        model_spec(name)  # an unknown model fails before any training
        plan[name] = int(epochs)
    return plan


def at_budget(run: Finished, budget_seconds: float) -> float | None:
    """The test accuracy at the last epoch end within the budget (wall clock), or None if none ended in it."""
    inside = [row for row in run.history if float(row["wall_seconds"]) <= budget_seconds]
    return float(inside[-1]["test_acc"]) if inside else None


def summary(runs: list[Finished], budget_minutes: float) -> tuple[list[str], list[list[str]], list[dict]]:
    headers = ["model", "parameters", "MMACs", "epochs", "wall minutes", "s / epoch", "test accuracy %",
               f"accuracy at {budget_minutes:g} min %"]
    rows, data = [], []
    for run in runs:
        params, macs = run.model_cost()
        wall = float(run.final["wall_seconds"])
        budget = at_budget(run, 60 * budget_minutes)
        rows.append([run.name, f"{params:,}", f"{macs / 1e6:,.1f}", str(len(run.history)), f"{wall / 60:.1f}",
                     f"{wall / len(run.history):.0f}", f"{100 * run.final['test_acc']:.2f}",
                     "-" if budget is None else f"{100 * budget:.2f}"])
        data.append({"model": run.name, "parameters": params, "macs": macs, "epochs": len(run.history),
                     "wall_seconds": wall, "test_acc": run.final["test_acc"], "test_acc_at_budget": budget,
                     "curve": [(float(row["wall_seconds"]), float(row["test_acc"])) for row in run.history]})
    return headers, rows, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", nargs="+", metavar="MODEL=EPOCHS")
    parser.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-minutes", type=float, required=True, help="the budget the epochs were chosen for")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_threads(args.threads)
    plan = parse_plan(args.plan)
    configs = {name: recipe_config("fast", model=name, epochs=epochs, batch_size=128, device="cpu",
                                   data_dir=args.data_dir, download=False) for name, epochs in plan.items()}
    runs = run_all(configs, args.out)
    headers, rows, data = summary(runs, args.budget_minutes)
    table = markdown_table(headers, rows)
    machine = f"{cpu_description()}, {args.threads} threads"
    (args.out / "results.md").write_text(f"# Residual families at a {args.budget_minutes:g}-minute budget\n\n"
                                         f"{machine}\n\n{table}\n")
    (args.out / "results.json").write_text(json.dumps({"budget_minutes": args.budget_minutes, "recipe": "fast",
                                                       "batch_size": 128, "cpu": machine, "runs": data}, indent=1))
    plot_recipe_curves(runs, runs[0].final["test_acc"], args.out / "families.png")
    print(table)


if __name__ == "__main__":
    main()
