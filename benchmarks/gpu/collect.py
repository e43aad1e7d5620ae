"""Gather what the GPU kit measured into one JSON and one figure.

    python benchmarks/gpu/collect.py --out benchmarks/results/gpu-h100 CALL_DIR[=PREFIX] ...

Each CALL_DIR is a folder fetched from one call of ``benchmarks/gpu/run.sh`` (its ``$OUT``): ``gpu.txt``, and
any of ``tests.log``, ``bench.json``, ``baseline.json``, ``NAME-metrics.csv`` with ``NAME-eval.txt``. A run is
named PREFIX + NAME (PREFIX tells apart the same step run twice, e.g. with another seed). Every run is compared
with the seeds' baseline found among the folders (time to its final accuracy, ``time_to_accuracy.compare``).
Writes OUT.json (machine, tests, bench rows, every run's epochs, TTA accuracy and comparison) and OUT.png (test
accuracy against wall clock, every run and the baseline).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from time_to_accuracy import compare, read_baseline, read_metrics, wall_seconds  # noqa: E402

from resnet_cifar.plots import save_figure  # noqa: E402  also selects matplotlib's file-only Agg backend


def tta_accuracy(path: Path) -> float | None:
    """The overall flip-TTA accuracy printed by ``resnet-cifar eval --tta``."""
    found = re.search(r"^overall\s+\d+\s+([\d.]+)%", path.read_text(), re.MULTILINE) if path.exists() else None
    return float(found.group(1)) / 100 if found else None


def test_summary(path: Path) -> dict:
    """Passed/failed counts and the names of the tests of a pytest ``-rA`` log."""
    text = path.read_text()
    return {"passed": re.findall(r"^PASSED (\S+)", text, re.MULTILINE),
            "failed": re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.MULTILINE),
            "summary": next((line.strip("= ") for line in reversed(text.splitlines()) if " in " in line), "")}


def collect(folders: list[tuple[Path, str]]) -> dict:
    """Everything the folders hold, with each run compared against the baseline."""
    report: dict = {"machine": None, "tests": None, "bench": None, "baseline": None, "runs": {}}
    for folder, prefix in folders:
        report["machine"] = report["machine"] or (folder / "gpu.txt").read_text().strip().splitlines()
        if (folder / "tests.log").exists():
            report["tests"] = test_summary(folder / "tests.log")
        if (folder / "bench.json").exists():
            report["bench"] = json.loads((folder / "bench.json").read_text())
        if (folder / "baseline.json").exists():
            rows, planned = read_baseline(folder / "baseline.json")
            report["baseline"] = {"rows": rows, "planned_epochs": planned}
        for metrics in sorted(folder.glob("*-metrics.csv")):
            name = metrics.name.removesuffix("-metrics.csv")
            report["runs"][prefix + name] = {"rows": read_metrics(metrics),
                                             "tta_acc": tta_accuracy(folder / f"{name}-eval.txt")}
    if report["baseline"]:
        for run in report["runs"].values():
            baseline = report["baseline"]
            run["versus_baseline"] = compare(baseline["rows"], run["rows"], baseline["planned_epochs"])
    return report


def plot(report: dict, path: Path) -> None:
    """Test accuracy against wall clock (log scale) for every run and the baseline."""
    figure, axis = plt.subplots(figsize=(8, 5))
    series = [(name, run["rows"]) for name, run in report["runs"].items()]
    if report["baseline"]:
        series.append(("seeds' recipe (baseline)", report["baseline"]["rows"]))
        axis.axhline(100 * report["baseline"]["rows"][-1]["test_acc"], color="grey", linestyle="--", linewidth=1)
    for name, rows in series:
        axis.plot([wall_seconds(row) for row in rows], [100 * row["test_acc"] for row in rows], marker=".",
                  label=name, linewidth=2.5 if "baseline" in name else 1.2)
    axis.set_xscale("log")
    axis.set_ylim(40, 95)
    axis.set_xlabel("wall clock since the first step (s), saving included, log scale")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title((report["machine"] or ["?", "?"])[1].split(",")[0] + ": ResNet-18 on our CIFAR-10 copy")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=8)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="CALL_DIR or CALL_DIR=PREFIX")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix for OUT.json and OUT.png")
    args = parser.parse_args()
    folders = [(Path(spec.partition("=")[0]), spec.partition("=")[2]) for spec in args.folders]
    report = collect(folders)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    plot(report, args.out.with_suffix(".png"))
    for name, run in report["runs"].items():
        speedup = (run.get("versus_baseline") or {}).get("speedup")
        print(f"{name:<16} final {run['rows'][-1]['test_acc']:.2%}  TTA {run['tta_acc'] or float('nan'):.2%}  "
              f"wall {wall_seconds(run['rows'][-1]):6.1f} s  to the baseline's final accuracy: "
              + (f"{speedup:.1f}x sooner" if speedup else "not reached"))


if __name__ == "__main__":
    main()
