"""DistributedDataParallel over NCCL: two GPUs with synchronised BatchNorm train like one GPU.

Skipped with fewer than two CUDA GPUs (CI has none); on a GPU machine: ``benchmarks/gpu/run.sh ddp``.
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")

# float32 without autocast, deterministic kernels: two processes and one differ only by summation order.
TRAIN = ["-m", "resnet_cifar", "train", "--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", "2",
         "--batch-size", "100", "--amp", "off", "--deterministic", "--sync-bn", "--device", "cuda", "--quiet"]


def _train(out: Path, processes: int) -> Path:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    done = subprocess.run([sys.executable, *launcher, *TRAIN, "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_gpus_with_sync_bn_train_like_one(tmp_path) -> None:
    one, two = _train(tmp_path / "one", 1), _train(tmp_path / "two", 2)
    with open(one / "metrics.csv") as a, open(two / "metrics.csv") as b:
        for row_one, row_two in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert float(row_two["train_loss"]) == pytest.approx(float(row_one["train_loss"]), rel=2e-3)
    weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    for key, value in weights_one.items():
        if value.is_floating_point():
            torch.testing.assert_close(weights_two[key], value, rtol=2e-2, atol=2e-3, msg=key)
