"""The CUDA path: device-resident data, bf16, channels-last, compile, the fused optimizer, no per-step syncs.

Skipped where no CUDA GPU is visible (CI has none); run on a GPU machine with ``benchmarks/gpu/run.sh tests``.
"""
from __future__ import annotations

import csv
import math

import pytest
import torch
from safetensors.torch import load_file

from resnet_cifar import create_model
from resnet_cifar.bench import run_bench
from resnet_cifar.data import load_dataset
from resnet_cifar.data.loader import Augment, BatchLoader
from resnet_cifar.engine.checkpoint import load_checkpoint, save_checkpoint
from resnet_cifar.engine.config import TrainConfig
from resnet_cifar.engine.device import resolve_amp
from resnet_cifar.engine.loop import EpochTally, train_epoch
from resnet_cifar.engine.optim import build_optimizer
from resnet_cifar.engine.trained import load_trained_model
from resnet_cifar.engine.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def _sample_loader(batch_size: int = 64, channels_last: bool = True) -> BatchLoader:
    data = load_dataset("cifar10-sample", "train")
    mean, std = data.channel_stats()
    return BatchLoader(data, batch_size, device=CUDA, mean=mean, std=std, shuffle=True, augment=Augment(),
                       drop_last=True, channels_last=channels_last)


def test_auto_precision_is_bf16_where_the_gpu_has_it() -> None:
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_amp("auto", CUDA) is expected


def test_loader_batches_live_on_the_gpu_in_channels_last() -> None:
    images, labels = next(iter(_sample_loader().epoch(0)))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.float32
    assert images.is_contiguous(memory_format=torch.channels_last) and images.shape == (64, 3, 32, 32)
    assert abs(images.mean().item()) < 0.5 and 0.5 < images.std().item() < 1.5  # normalised


def test_optimizer_is_the_fused_kernel_on_cuda() -> None:
    model = create_model("resnet20").to(CUDA)
    optimizer = build_optimizer(TrainConfig(), model)
    assert optimizer.defaults.get("fused") is True


def test_training_steps_never_wait_for_the_gpu() -> None:
    """Loader, forward, backward, fused step and the running sums: no host synchronisation between steps."""
    loader = _sample_loader()
    model = create_model("resnet20").to(CUDA).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(TrainConfig(), model)
    settings = dict(criterion=torch.nn.CrossEntropyLoss(), scaler=torch.amp.GradScaler("cuda", enabled=False),
                    amp_dtype=torch.bfloat16, after_step=lambda: None)
    train_epoch(model, loader.epoch(0), optimizer, tally=EpochTally(), **settings)  # warm-up: lazy CUDA set-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        tally = train_epoch(model, loader.epoch(1), optimizer, tally=EpochTally(), **settings)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert tally.batches == len(loader) and math.isfinite(tally.loss)


def test_fast_recipe_settings_train_end_to_end_and_load_on_the_cpu(tmp_path) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=128, device="cuda",
                         channels_last=True, compile=True, out=str(tmp_path / "run"))
    folder = train(config, quiet=True)
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(math.isfinite(float(row["train_loss"])) for row in rows)
    weights = load_file(folder / "model.safetensors")
    assert not any(key.startswith("_orig_mod.") for key in weights)  # compile's prefix is not exported
    trained = load_trained_model(folder, device="cpu")
    assert trained.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cuda_graphs_train_and_match_the_metrics_columns(tmp_path) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, device="cuda",
                         compile=True, compile_mode="reduce-overhead", out=str(tmp_path / "run"))
    folder = train(config, quiet=True)
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


def test_a_run_started_on_the_gpu_resumes_on_the_cpu(tmp_path) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, device="cuda",
                         out=str(tmp_path / "run"))
    folder = train(config, quiet=True, stop_after=1)
    state = load_checkpoint(folder / "last.pt")
    state["config"]["device"] = "cpu"
    save_checkpoint(folder / "last.pt", state)
    train(resume=folder, quiet=True)
    with open(folder / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_bench_measures_the_gpu_against_its_bf16_peak() -> None:
    rows = run_bench(["resnet20"], [256], CUDA, steps=3, warmup=2)
    bf16 = next(r for r in rows if r["task"] == "train" and r["precision"] == "bfloat16")
    assert bf16["peak_tflops"] > 50 and 0 < bf16["peak_share"] < 1
    assert not any(r["precision"] == "int8" for r in rows)  # int8 is a CPU path
