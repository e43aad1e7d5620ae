"""What explanations cost on this machine: one image's Grad-CAM (and each other method) for a model, and what
``eval --explain`` adds to ``eval`` of the shipped resnet20 on the bundled sample, in this process and as the
command a user runs (``resnet-cifar eval --pretrained resnet20 --dataset cifar10-sample``, start included).

    python benchmarks/explain_cost.py [--model resnet18] [--repeats 5] [--json OUT.json]

Times are medians of ``--repeats`` calls after one warm-up (with and without ``--explain`` alternating; the
command half as many), with PyTorch's threads as the CLI sets them (all usable CPUs by default). Random weights
for ``--model`` (the cost does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from resnet_cifar import create_model, evaluate, load_pretrained
from resnet_cifar.inference.explain import METHODS, explain


def cpu_kind() -> str:
    """The CPU's model name, family/model and whether it has AVX-512 with native bf16 (from /proc/cpuinfo)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        return platform.machine()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    bf16 = "avx512_bf16" in fields.get("flags", "").split()
    return (f"{fields.get('model name', '?')} family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
            f", {'AVX-512 with bf16' if bf16 else 'no native bf16'}")


def median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_pair(first, second, repeats: int) -> tuple[float, float]:
    """Medians of ``repeats`` timed calls of each, alternating, after one warm-up call of each."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for call, kept in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            call()
            kept.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def eval_command(out: str, explained: bool) -> None:
    subprocess.run([sys.executable, "-m", "resnet_cifar", "eval", "--pretrained", "resnet20", "--dataset",
                    "cifar10-sample", "--device", "cpu", "--out", out] + (["--explain"] if explained else []),
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = create_model(args.model).eval()
    image = torch.randn(1, 3, 32, 32)
    rows = {"machine": {"cpu": cpu_kind(), "threads": torch.get_num_threads(),
                        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}, "one_image": {}}
    for method in METHODS:
        try:
            rows["one_image"][method] = median_seconds(lambda m=method: explain(model, image, method=m), args.repeats)
        except Exception as error:  # noqa: BLE001  integrated gradients need captum
            rows["one_image"][method] = f"unavailable: {error}"
    shipped = load_pretrained("resnet20")
    with tempfile.TemporaryDirectory() as scratch:
        plain, explained = median_pair(
            *(lambda e=e: evaluate(shipped, dataset="cifar10-sample", out_dir=scratch, device="cpu", explain=e)
              for e in (False, True)), args.repeats)
        rows["eval_resnet20_sample"] = {"eval_s": plain, "eval_explain_s": explained, "added": explained / plain - 1}
        plain, explained = median_pair(*(lambda e=e: eval_command(scratch, e) for e in (False, True)),
                                       max(1, args.repeats // 2))
        rows["eval_command_resnet20_sample"] = {"eval_s": plain, "eval_explain_s": explained,
                                                "added": explained / plain - 1}
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
