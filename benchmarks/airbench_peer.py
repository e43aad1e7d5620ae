"""airbench, the CIFAR-10 speed record line (Keller Jordan, arXiv 2404.00498), run on our CIFAR-10 copy.

    python benchmarks/airbench_peer.py DATA_DIR --out DIR [--variants 94 95 96] [--runs N] [--device cpu]

DATA_DIR holds our copy in the official python format (``cifar-10-batches-py``, as ``../shared/tools/
cifar10_from_jpeg_tar.py`` writes it). The script writes it in airbench's own format (``DIR/work/cifar10/train.pt``
and ``test.pt``: uint8 NHWC images, labels, class names), then runs the PyPI package ``airbench`` unmodified on a
CUDA GPU: for each variant one warm-up run (as airbench's README does: cuDNN autotuning, not timed), then N timed
runs. airbench is a benchmark-only dependency: install it beside this script (``pip install airbench==0.1.8``),
never into the package's requirements.

For every run it keeps what airbench itself prints at each epoch (the last batch's loss and accuracy, the test
accuracy without test-time augmentation, and airbench's own clock: CUDA events around the training steps only,
evaluation left out) and, at the end, the test accuracy with airbench's test-time augmentation (flip and one-pixel
translations, ``tta_level=2``) and without, plus the wall clock of the whole call. Writes, in DIR:
``airbenchNN-runK-metrics.csv`` (columns ``epoch, train_loss, train_acc, test_acc, elapsed_seconds`` as our
``metrics.csv``, so ``time_to_accuracy.py`` reads both) and ``airbench.json`` (every run, per-variant means, the
machine).

On a CPU (``--device cpu``, or no CUDA GPU) it runs airbench's own source with the few changes that only move it
there, listed in ``airbench_cpu.py`` (its ``.cuda()``/``.half()`` calls, its CUDA timing events, torchvision's
Normalize), under bf16 autocast where the CPU has native bf16 (else, or with ``--cpu-amp off``, in float32); the
warm-up run is left out there (no autotuning to do), and airbench's clock is then the wall clock around the same
steps.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from airbench_cpu import load_airbench_for_cpu

from resnet_cifar.core.device import cpu_description, cpu_supports_bf16
from resnet_cifar.core.threads import configure_threads
from resnet_cifar.data.cifar import read_cifar

COLUMNS = ["run", "epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc", "total_time_seconds"]


def write_airbench_data(data_dir: Path, folder: Path) -> None:
    """Our copy's train and test splits as airbench's ``train.pt``/``test.pt`` (uint8 NHWC, int64 labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images = read_cifar("cifar10", data_dir, split, download=False)
        torch.save({"images": images.images.permute(0, 2, 3, 1).contiguous(), "labels": images.labels,
                    "classes": images.class_names}, folder / f"{split}.pt")


def parse_rows(printed: str) -> list[dict]:
    """airbench's printed table (``| run | epoch | ... |``) as rows of numbers; the last is its ``eval`` row."""
    rows = []
    for line in printed.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) or cells[1] in ("", "epoch"):
            continue
        row = dict(zip(COLUMNS, cells))
        rows.append({key: (value if key == "epoch" else float(value)) for key, value in row.items()
                     if value and key != "run"})
    return rows


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def precision(device: str, cpu_bf16: bool) -> contextlib.AbstractContextManager:
    """airbench's own fp16 on the GPU (nothing to add); on the CPU bf16 autocast (``cpu_bf16``) or float32.

    One autocast region covers the whole of airbench's training, so its weight cache must be off: autocast keeps
    the bf16 copy it makes of each weight until the outermost region ends, and inside one region around the whole
    run every step would compute with the weights of the first (measured: airbench94 stayed at chance, loss 2.30,
    for 10 epochs; with the cache off it trains as in float32).
    """
    if device != "cpu":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16, cache_enabled=False)


def run_once(airbench: types.ModuleType, variant: str, run: int, device: str, cpu_bf16: bool = False,
             **train_options) -> dict:
    """One timed airbench run: its epoch rows, its final accuracies with and without TTA, and the wall clock.
    ``train_options`` go to airbench's ``train9x`` (a smaller ``train_loader`` or fewer ``epochs`` in tests)."""
    synchronize(device)
    started = time.perf_counter()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), precision(device, cpu_bf16):
        model = getattr(airbench, f"train{variant}")(run=run, **train_options)
    synchronize(device)
    wall = time.perf_counter() - started
    rows = parse_rows(printed.getvalue())
    epochs = [row for row in rows if row["epoch"] != "eval"]
    final = rows[-1]
    test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
    with precision(device, cpu_bf16):
        test_acc = airbench.evaluate(model, test_loader, tta_level=0)
    return {
        "epochs": [{"epoch": int(row["epoch"]) + 1, "train_loss": row["train_loss"], "train_acc": row["train_acc"],
                    "test_acc": row["val_acc"], "elapsed_seconds": row["total_time_seconds"]} for row in epochs],
        "test_acc": test_acc,
        "tta_test_acc": final["tta_val_acc"],
        "airbench_seconds": final["total_time_seconds"],  # training steps + final TTA, airbench's own clock
        "wall_seconds": wall,  # the whole call: data to the device, whitening init, every epoch's printed eval
    }


def write_metrics(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def machine(device: str, cpu_bf16: bool) -> dict:
    where = ({"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda} if device == "cuda" else
             {"cpu": cpu_description(), "threads": torch.get_num_threads(),
              "precision": "bf16 autocast" if cpu_bf16 else "float32"})
    return {**where, "torch": torch.__version__, "airbench": "0.1.8", "python": platform.python_version(),
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}


def load_airbench(device: str) -> types.ModuleType:
    """The installed airbench as it is on a GPU; its CPU port (``airbench_cpu.py``) on the CPU."""
    if device == "cpu":
        return load_airbench_for_cpu()
    import airbench

    return airbench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="folder holding cifar-10-batches-py (our copy)")
    parser.add_argument("--out", type=Path, required=True, help="where the metrics and airbench.json go")
    parser.add_argument("--variants", nargs="+", default=["94", "95", "96"], choices=["93", "94", "95", "96"])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each variant (default 3)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="auto: the GPU where there is one (default)")
    parser.add_argument("--cpu-amp", choices=["auto", "bf16", "off"], default="auto",
                        help="on the CPU: bf16 autocast (auto: where the CPU has native bf16, as our training) or "
                             "float32 (off)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process may use)")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("airbench_peer.py: --device cuda, but there is no CUDA GPU here; give --device cpu")
    configure_threads(args.threads)
    cpu_bf16 = args.cpu_amp == "bf16" or (args.cpu_amp == "auto" and cpu_supports_bf16())
    args.out.mkdir(parents=True, exist_ok=True)
    work = (args.out / "work").resolve()
    write_airbench_data(args.data_dir.resolve(), work / "cifar10")
    os.chdir(work)  # airbench reads its test split from ./cifar10
    airbench = load_airbench(device)

    report = {"machine": machine(device, cpu_bf16), "variants": {}}
    for variant in args.variants:
        if device == "cuda":
            with contextlib.redirect_stdout(io.StringIO()):
                getattr(airbench, f"warmup{variant}")()
        runs = []
        for run in range(args.runs):
            result = run_once(airbench, variant, run, device, cpu_bf16)
            write_metrics(result["epochs"], args.out / f"airbench{variant}-run{run}-metrics.csv")
            print(f"airbench{variant} run {run}: {100 * result['test_acc']:.2f}% "
                  f"({100 * result['tta_test_acc']:.2f}% with TTA) in {result['airbench_seconds']:.2f} s "
                  f"(wall {result['wall_seconds']:.1f} s)", flush=True)
            runs.append(result)
        report["variants"][variant] = {
            "runs": runs,
            "mean_test_acc": statistics.mean(run["test_acc"] for run in runs),
            "mean_tta_test_acc": statistics.mean(run["tta_test_acc"] for run in runs),
            "mean_airbench_seconds": statistics.mean(run["airbench_seconds"] for run in runs),
        }
        (args.out / "airbench.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
