"""Time to accuracy: how much sooner one of our runs reaches the seeds' baseline's final test accuracy.

    python benchmarks/time_to_accuracy.py BASELINE_JSON RUN/metrics.csv [--label "fast recipe"] --out DIR

BASELINE_JSON comes from ``seeds_baseline.py`` (or is another run's metrics.csv, to compare two recipes of ours);
metrics.csv from ``resnet-cifar train`` on the same device and data. Both clocks start at the first training step
and include every epoch's test pass, so ``torch.compile`` time counts against us. Times are wall clock, saving
included (``wall_seconds``); the training-and-evaluation clock alone (``elapsed_seconds``) is reported beside
them. Accuracy is known at epoch ends only, so "reached" means at the end of the first epoch whose test accuracy
is at least the baseline's final one. Writes DIR/time-to-accuracy.png (test accuracy against wall time, both
runs) and DIR/time-to-accuracy.json, and prints the summary.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt

from resnet_cifar.plots import save_figure  # also selects matplotlib's file-only Agg backend


def read_baseline(path: Path) -> tuple[list[dict], int]:
    """The epoch rows of a ``seeds_baseline.py`` report, or of another run's metrics.csv (its config.json beside
    it saying how many epochs it was asked for), and that number of epochs."""
    if path.suffix == ".csv":
        rows, config = read_metrics(path), path.parent / "config.json"
        return rows, json.loads(config.read_text())["epochs"] if config.exists() else len(rows)
    report = json.loads(path.read_text())
    return report["rows"], report.get("epochs", len(report["rows"]))


def read_metrics(path: Path) -> list[dict]:
    """The epoch rows of a run's metrics.csv, with numbers as floats."""
    with path.open(newline="") as f:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(f)]


def wall_seconds(row: dict) -> float:
    """The wall clock at the end of an epoch row, saving included; rows written before ``wall_seconds`` existed
    have only ``elapsed_seconds`` (training and evaluation)."""
    return row.get("wall_seconds", row["elapsed_seconds"])


def compare(baseline: list[dict], ours: list[dict], baseline_planned_epochs: int) -> dict:
    """The baseline's final accuracy and time, when (if ever) ours reached it, and both final accuracies.

    Times are wall clock (``*_seconds``); the same on the training and evaluation clock alone
    (``*_compute_seconds``, which leaves out saving) are kept beside them.
    """
    target = baseline[-1]["test_acc"]
    reached = next((row for row in ours if row["test_acc"] >= target), None)
    return {
        "baseline_final_acc": target, "baseline_seconds": wall_seconds(baseline[-1]),
        "baseline_compute_seconds": baseline[-1]["elapsed_seconds"],
        "baseline_epochs": int(baseline[-1].get("epoch", len(baseline))),  # projected_reference.py: its last row only
        "baseline_planned_epochs": baseline_planned_epochs,
        "ours_final_acc": ours[-1]["test_acc"], "ours_seconds": wall_seconds(ours[-1]),
        "ours_compute_seconds": ours[-1]["elapsed_seconds"], "ours_epochs": len(ours),
        "ours_gain_points": 100 * (ours[-1]["test_acc"] - target),
        "ours_epoch_reaching": int(reached["epoch"]) if reached else None,
        "ours_seconds_reaching": wall_seconds(reached) if reached else None,
        "ours_compute_seconds_reaching": reached["elapsed_seconds"] if reached else None,
        "speedup": wall_seconds(baseline[-1]) / wall_seconds(reached) if reached else None,
        "compute_speedup": baseline[-1]["elapsed_seconds"] / reached["elapsed_seconds"] if reached else None,
    }


def plot(baseline: list[dict], ours: list[dict], summary: dict, labels: tuple[str, str], path: Path) -> None:
    """Test accuracy against wall time (log scale) for both runs, the baseline's final accuracy dashed."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for rows, name in zip((baseline, ours), labels):
        axis.plot([wall_seconds(row) for row in rows], [100 * row["test_acc"] for row in rows], marker=".",
                  label=name)
    axis.axhline(100 * summary["baseline_final_acc"], color="grey", linestyle="--", linewidth=1)
    if summary["speedup"]:
        axis.annotate(f"speed-up {summary['speedup']:.1f}x", (summary["ours_seconds_reaching"],
                      100 * summary["baseline_final_acc"]), textcoords="offset points", xytext=(8, -14))
    axis.set_xscale("log")
    axis.set_xlabel("wall time (s), log scale")
    axis.set_ylabel("test accuracy (%)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right")
    save_figure(figure, path)


def describe(summary: dict, label: str) -> str:
    """The summary in two lines."""
    lines = [f"baseline: {summary['baseline_final_acc']:.2%} after {summary['baseline_epochs']} epochs, "
             f"{summary['baseline_seconds']:.1f} s"]
    if summary["baseline_epochs"] < summary["baseline_planned_epochs"]:
        lines[0] += (f" (STOPPED EARLY: {summary['baseline_planned_epochs']} epochs planned, so this is not the "
                     "recipe's final accuracy)")
    if summary["speedup"]:
        lines.append(f"{label}: reached it at epoch {summary['ours_epoch_reaching']}, "
                     f"{summary['ours_seconds_reaching']:.1f} s (speed-up {summary['speedup']:.1f}x wall clock, "
                     f"{summary['compute_speedup']:.1f}x training and evaluation alone); ")
    else:
        lines.append(f"{label}: never reached it; ")
    lines[-1] += (f"final {summary['ours_final_acc']:.2%} after {summary['ours_epochs']} epochs, "
                  f"{summary['ours_seconds']:.1f} s ({summary['ours_gain_points']:+.2f} points)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="JSON written by seeds_baseline.py, or a run's metrics.csv")
    parser.add_argument("metrics", type=Path, help="metrics.csv of our run")
    parser.add_argument("--label", default="ours", help="our run's name in the figure (default ours)")
    parser.add_argument("--baseline-label", default="seeds' recipe (baseline)", help="the baseline's name in the "
                        "figure (default: seeds' recipe (baseline))")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figure and JSON (default .)")
    args = parser.parse_args()
    (baseline, planned_epochs), ours = read_baseline(args.baseline), read_metrics(args.metrics)
    summary = compare(baseline, ours, planned_epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(baseline, ours, summary, (args.baseline_label, args.label), args.out / "time-to-accuracy.png")
    (args.out / "time-to-accuracy.json").write_text(json.dumps({"label": args.label, **summary}, indent=2))
    print(describe(summary, args.label))


if __name__ == "__main__":
    main()
