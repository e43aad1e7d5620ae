"""Side by side in one process: the seeds' way against ours, ResNet-18, batch 128, on this machine's CPU.

Baseline (as the seed posts train): torchvision ``CIFAR10`` + PIL transforms (random crop with padding 4,
flip, ToTensor, Normalize) + ``DataLoader`` (2 workers), float32 eager steps. Ours: the on-device loader,
bf16 autocast + channels_last for training, folded BatchNorm + bf16 + channels_last under inference_mode
for inference, and (when torchao is installed) int8 inference: folded, quantised and compiled. Both use the
same ResNet-18 layout (11,173,962 parameters). Needs torchvision, so it runs in the separate benchmark venv
(see BENCHMARKS.md):

    benchmarks/.venv-baseline/bin/python benchmarks/compare_cpu_baseline.py DATA_DIR [--json FILE]

DATA_DIR holds cifar-10-batches-py/ (rebuilt from ../shared/data, see its README).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision
from seeds_way import seeds_loader

from resnet_cifar.bench import INFER_VARIANTS, Variant, inference_throughput, train_throughput
from resnet_cifar.data import load_dataset
from resnet_cifar.data.loader import Augment, BatchLoader
from resnet_cifar.inference.int8 import int8_available

MODEL, BATCH = "resnet18", 128
OURS_TRAIN = Variant("bf16 + channels_last", torch.bfloat16, channels_last=True)
OURS_INFER = Variant("bf16 + channels_last + folded BN", torch.bfloat16, channels_last=True, fold_bn=True)
OURS_INT8 = next(variant for variant in INFER_VARIANTS if variant.int8)
BASELINE = Variant("float32")


def baseline_data(data_dir: str, batches: int) -> float:
    """Images/s of the PIL + DataLoader pipeline over ``batches`` batches (after the workers have started)."""
    iterator = iter(seeds_loader(data_dir, train=True, batch_size=BATCH, workers=2))
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def our_data(data_dir: str, batches: int) -> float:
    """Images/s of the on-device loader (here the CPU) over ``batches`` batches of the real training set."""
    train = load_dataset("cifar10", "train", data_dir)
    mean, std = train.channel_stats()
    loader = BatchLoader(train, BATCH, device=torch.device("cpu"), mean=mean, std=std, shuffle=True, augment=Augment())
    iterator = loader.epoch(0)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--steps", type=int, default=5, help="timed training/inference steps (default 5)")
    parser.add_argument("--data-batches", type=int, default=300, help="timed data batches, at most 389 (default 300)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    baseline_inference = inference_throughput(MODEL, BATCH, cpu, BASELINE, steps=args.steps, warmup=1)
    rows = [
        ("data pipeline", baseline_data(args.data_dir, args.data_batches), our_data(args.data_dir, args.data_batches)),
        ("training step", train_throughput(MODEL, BATCH, cpu, BASELINE, steps=args.steps, warmup=1),
         train_throughput(MODEL, BATCH, cpu, OURS_TRAIN, steps=args.steps, warmup=1)),
        ("inference", baseline_inference,
         inference_throughput(MODEL, BATCH, cpu, OURS_INFER, steps=args.steps, warmup=1)),
    ]
    if int8_available():
        rows.append(("inference int8", baseline_inference,
                     inference_throughput(MODEL, BATCH, cpu, OURS_INT8, steps=args.steps, warmup=1)))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, "
          f"{MODEL}, batch {BATCH}")
    print(f"{'what':<15} {'baseline img/s':>15} {'ours img/s':>12} {'ratio':>7}")
    for what, baseline, ours in rows:
        print(f"{what:<15} {baseline:>15.1f} {ours:>12.1f} {ours / baseline:>6.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"what": w, "baseline": b, "ours": o, "ratio": o / b} for w, b, o in rows], f, indent=2)


if __name__ == "__main__":
    main()
