"""Ablation of training-recipe ingredients: one short run per variant, side by side on one machine.

    python benchmarks/recipe_ablation.py --data-dir DATA_DIR --out DIR [--set short|long|speedrun] [--epochs 10]
        [--train-subset 10000] [--model resnet20] [--dataset cifar10] [--seed 0] [--only NAME ...]

Every variant is the base recipe (``resnet-cifar train``'s defaults, i.e. the ``default`` recipe) plus the options
listed for it. The ``short`` set varies each ingredient of that recipe; the ``long`` set starts from its CPU form
(batch 128, lr 0.2, the short set's winner) and changes one ingredient at a time where a long run, which shows each
image many times (give it more epochs), may differ from a short one: the regularisers (cutout, zero-init residual,
stronger label smoothing and weight decay, mixup, CutMix), half the batch, twice the peak learning rate. The
``speedrun`` set adds to the same CPU base, one at a time and then all together, what the speed record line
(airbench) trains with: label smoothing 0.2, alternating flips, translation by up to 2 pixels with reflected borders,
fixed BatchNorm scales with a 64x learning rate for biases, an average of the weights; its runs also measure the last
epoch with airbench's flip-translate test-time augmentation (``final_tta_acc``). The
variants are trained with ``resnet-cifar train`` in a subprocess for the same epochs on the same class-balanced
training subset, one after the other, nothing else running. A variant whose run folder (DIR/SET-NN) already holds
all its epochs is not trained again, so an interrupted ablation continues where it stopped; with ``--only`` the
other variants' finished runs are reported beside the ones trained. Writes DIR/ablation.json (final test accuracy,
best, seconds per variant, the command, the CPU) and DIR/ablation.png (test accuracy per epoch), and prints a
Markdown table.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from time_to_accuracy import read_metrics

from resnet_cifar.core.device import cpu_description
from resnet_cifar.plots import save_figure  # also selects matplotlib's file-only Agg backend

# (name, options added to the base): each changes one ingredient of the base.
SHORT_VARIANTS: list[tuple[str, list[str]]] = [
    ("base: batch 512, lr 0.2", []),
    ("batch 128, lr 0.05 (lr scaled with the batch)", ["--batch-size", "128", "--lr", "0.05"]),
    ("batch 128, lr 0.1", ["--batch-size", "128", "--lr", "0.1"]),
    ("batch 128, lr 0.2", ["--batch-size", "128", "--lr", "0.2"]),
    ("batch 128, lr 0.1, no decay on BN/bias", ["--batch-size", "128", "--lr", "0.1", "--no-decay-norm-and-bias"]),
    ("batch 128, lr 0.1, no label smoothing", ["--batch-size", "128", "--lr", "0.1", "--label-smoothing", "0"]),
    ("batch 128, lr 0.1, no Nesterov", ["--batch-size", "128", "--lr", "0.1", "--no-nesterov"]),
    ("batch 128, lr 0.1, cosine (1 epoch warm-up)", ["--batch-size", "128", "--lr", "0.1", "--schedule", "cosine",
                                                     "--warmup-epochs", "1"]),
    ("batch 128, lr 0.1, weight decay 1e-4", ["--batch-size", "128", "--lr", "0.1", "--weight-decay", "1e-4"]),
    ("batch 128, lr 0.1, EMA", ["--batch-size", "128", "--lr", "0.1", "--ema"]),
    ("batch 128, lr 0.1, cutout 8", ["--batch-size", "128", "--lr", "0.1", "--cutout", "8"]),
]
CPU_BASE = ["--batch-size", "128", "--lr", "0.2"]
LONG_VARIANTS: list[tuple[str, list[str]]] = [
    ("batch 128, lr 0.2", CPU_BASE),
    ("batch 128, lr 0.2, cutout 8", [*CPU_BASE, "--cutout", "8"]),
    ("batch 128, lr 0.2, zero-init residual", [*CPU_BASE, "--zero-init-residual"]),
    ("batch 128, lr 0.2, label smoothing 0.2", [*CPU_BASE, "--label-smoothing", "0.2"]),
    ("batch 128, lr 0.2, weight decay 1e-3", [*CPU_BASE, "--weight-decay", "1e-3"]),
    ("batch 64, lr 0.2 (twice the steps)", ["--batch-size", "64", "--lr", "0.2"]),
    ("batch 128, lr 0.2, mixup 0.2", [*CPU_BASE, "--mixup", "0.2"]),
    ("batch 128, lr 0.2, CutMix 1.0", [*CPU_BASE, "--cutmix", "1.0"]),
    ("batch 128, lr 0.4 (twice the peak)", ["--batch-size", "128", "--lr", "0.4"]),
]
# What transfers from the record line (airbench, "How to train your ResNet"), each added alone to the CPU base, then
# all together; every variant also measures the last epoch with airbench's flip-translate TTA (test_tta_acc).
AIRBENCH_INGREDIENTS: list[tuple[str, list[str]]] = [
    ("label smoothing 0.2", ["--label-smoothing", "0.2"]),
    ("alternating flip", ["--flip", "alternate"]),
    ("translate 2 (reflect)", ["--crop-padding", "2", "--pad-mode", "reflect"]),
    ("fixed BN scales, bias lr x64", ["--no-train-norm-scale", "--bias-lr-scale", "64"]),
    ("EMA", ["--ema"]),
]
SPEEDRUN_VARIANTS: list[tuple[str, list[str]]] = [
    ("batch 128, lr 0.2", CPU_BASE),
    *((f"batch 128, lr 0.2, {name}", [*CPU_BASE, *options]) for name, options in AIRBENCH_INGREDIENTS),
    ("batch 128, lr 0.2, all of them", [*CPU_BASE, *(o for _, options in AIRBENCH_INGREDIENTS for o in options)]),
]
VARIANT_SETS = {"short": SHORT_VARIANTS, "long": LONG_VARIANTS, "speedrun": SPEEDRUN_VARIANTS}
TTA_SETS = {"speedrun": ["--tta", "flip-translate"]}


def read_rows(run: Path) -> list[dict[str, float]]:
    """The epoch rows of a run's metrics.csv (empty when it has none yet)."""
    path = run / "metrics.csv"
    return read_metrics(path) if path.exists() else []


def train(command: list[str], run: Path, epochs: int) -> list[dict[str, float]]:
    """Train one variant unless its folder already holds every epoch (then its rows are reused)."""
    rows = read_rows(run)
    if len(rows) < epochs:
        if run.exists():
            command = [*command, "--resume"]
        subprocess.run(command, check=True)
        rows = read_rows(run)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", choices=VARIANT_SETS, default="short", help="which variants (see above)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these variants only (names as in the table)")
    args = parser.parse_args()
    variants = VARIANT_SETS[args.set]
    names = [name for name, _ in variants]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}: choose from {'; '.join(names)}")
    results = []
    for index, (name, options) in enumerate(variants):
        run = args.out / f"{args.set}-{index:02d}"  # per set: a reused folder must hold this set's variant
        command = [sys.executable, "-m", "resnet_cifar", "train", "--model", args.model, "--epochs", str(args.epochs),
                   "--train-subset", str(args.train_subset), "--seed", str(args.seed), "--device", "cpu",
                   "--dataset", args.dataset, "--data-dir", args.data_dir, "--no-download", "--channels-last",
                   "--quiet", "--out", str(run), *TTA_SETS.get(args.set, []), *options]
        rows = read_rows(run) if args.only and name not in args.only else train(command, run, args.epochs)
        if len(rows) < args.epochs:
            continue  # not selected and not run before
        results.append({"name": name, "options": options, "command": shlex.join(command[2:]),
                        "final_test_acc": rows[-1]["test_acc"], "best_test_acc": max(r["test_acc"] for r in rows),
                        "final_tta_acc": rows[-1].get("test_tta_acc"),
                        "seconds": rows[-1]["wall_seconds"], "test_acc": [r["test_acc"] for r in rows]})
        print(f"{name}: {100 * rows[-1]['test_acc']:.2f}% in {rows[-1]['wall_seconds']:.0f} s", flush=True)
    report = {"set": args.set, "model": args.model, "epochs": args.epochs, "train_subset": args.train_subset,
              "seed": args.seed, "cpu": cpu_description(), "threads": torch.get_num_threads(), "results": results}
    (args.out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    figure, axes = plt.subplots(figsize=(8, 5))
    for result in results:
        axes.plot(range(1, len(result["test_acc"]) + 1), [100 * a for a in result["test_acc"]], label=result["name"])
    axes.set(xlabel="epoch", ylabel="test accuracy (%)",
             title=f"{args.model}, {args.train_subset} training images, {args.epochs} epochs, seed {args.seed}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    save_figure(figure, args.out / "ablation.png")
    print("\n| variant | final test acc | with TTA | best | seconds |\n|---|---:|---:|---:|---:|")
    for result in results:
        tta = "-" if result["final_tta_acc"] is None else f"{100 * result['final_tta_acc']:.2f}%"
        print(f"| {result['name']} | {100 * result['final_test_acc']:.2f}% | {tta} | "
              f"{100 * result['best_test_acc']:.2f}% | {result['seconds']:.0f} |")


if __name__ == "__main__":
    main()
