"""The CUDA path: device-resident data, bf16, channels-last, compile, the fused optimizer, no per-step syncs.

Skipped where no CUDA GPU is visible (CI has none); run on a GPU machine with ``benchmarks/gpu/run.sh tests``.
"""
from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
from typing import Iterator

import pytest
import torch
from safetensors.torch import load_file
from torch._dynamo.utils import counters

from resnet_cifar import create_model
from resnet_cifar.bench import run_bench
from resnet_cifar.core.checkpoint import load_checkpoint, save_checkpoint
from resnet_cifar.core.device import resolve_amp
from resnet_cifar.data import load_dataset
from resnet_cifar.data.loader import Augment, BatchLoader
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.ema import EMA
from resnet_cifar.training.loop import EpochTally, train_epoch
from resnet_cifar.training.optim import build_optimizer, build_scheduler
from resnet_cifar.training.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def _sample_loader(batch_size: int = 64, channels_last: bool = True) -> BatchLoader:
    data = load_dataset("cifar10-sample", "train")
    mean, std = data.channel_stats()
    return BatchLoader(data, batch_size, device=CUDA, mean=mean, std=std, shuffle=True, augment=Augment(),
                       drop_last=True, channels_last=channels_last)


def test_auto_precision_is_bf16_where_the_gpu_has_it_natively() -> None:
    expected = torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16
    assert resolve_amp("auto", CUDA) is expected


def test_the_gpu_loader_yields_the_images_of_the_cpu_loader() -> None:
    """Order and augmentation are drawn on the CPU for every device: a run can move between them mid-epoch."""
    on_gpu = [(x.cpu(), y.cpu()) for x, y in _sample_loader(channels_last=False).epoch(3, start_batch=5)]
    data = load_dataset("cifar10-sample", "train")
    mean, std = data.channel_stats()
    on_cpu = BatchLoader(data, 64, device=torch.device("cpu"), mean=mean, std=std, shuffle=True, augment=Augment(),
                         drop_last=True)
    for (gpu_x, gpu_y), (cpu_x, cpu_y) in zip(on_gpu, on_cpu.epoch(3, start_batch=5), strict=True):
        assert torch.equal(gpu_y, cpu_y) and torch.allclose(gpu_x, cpu_x, atol=1e-6)


def test_loader_batches_live_on_the_gpu_in_channels_last() -> None:
    images, labels = next(iter(_sample_loader().epoch(0)))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.float32
    assert images.is_contiguous(memory_format=torch.channels_last) and images.shape == (64, 3, 32, 32)
    assert abs(images.mean().item()) < 0.5 and 0.5 < images.std().item() < 1.5  # normalised


def test_optimizer_is_the_fused_kernel_on_cuda() -> None:
    model = create_model("resnet20").to(CUDA)
    optimizer = build_optimizer(TrainConfig(), model)
    assert optimizer.defaults.get("fused") is True


def _sync_check_after_warm_up(batches: Iterator) -> Iterator:
    """``batches`` with CUDA's synchronisation check raising from the second batch on, and off again once the
    last one is trained (the end-of-epoch non-finite check reads the GPU on purpose, once an epoch)."""
    torch.cuda.synchronize()
    try:
        for index, batch in enumerate(batches):
            if index == 1:  # the first step sets up cuBLAS/cuDNN and the optimizer state, which may wait
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            yield batch
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_training_steps_never_wait_for_the_gpu() -> None:
    """Loader, forward, backward, fused step, schedule, EMA and the running sums: no host synchronisation."""
    loader = _sample_loader()
    model = create_model("resnet20").to(CUDA).to(memory_format=torch.channels_last)
    config = TrainConfig()
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer, len(loader))
    ema = EMA(model, 0.99)

    def after_step() -> None:
        scheduler.step()
        ema.update(model)

    tally = train_epoch(model, _sync_check_after_warm_up(loader.epoch(1)), optimizer,
                        criterion=torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                        scaler=torch.amp.GradScaler("cuda", enabled=False), amp_dtype=torch.bfloat16,
                        tally=EpochTally(), after_step=after_step)
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


def test_cuda_graphs_really_run_and_train(tmp_path) -> None:
    counters.clear()
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, device="cuda",
                         compile=True, compile_mode="reduce-overhead", out=str(tmp_path / "run"))
    folder = train(config, quiet=True)
    assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])  # Inductor fell back to eager
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


def test_fp16_with_a_gradient_scaler_trains_and_resumes(tmp_path) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, device="cuda",
                         amp="fp16", out=str(tmp_path / "run"))
    folder = train(config, quiet=True, stop_after=1)
    scaler = load_checkpoint(folder / "last.pt")["scaler"]
    assert scaler and scaler["scale"] > 0  # an active scaler, saved
    train(resume=folder, quiet=True)
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["1", "2"] and all(math.isfinite(float(r["train_loss"])) for r in rows)


def test_a_bf16_run_resumes_as_fp16(tmp_path) -> None:
    """A bf16 run saves its (disabled) scaler empty; continuing it in fp16 starts a fresh scaler."""
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, device="cuda",
                         amp="bf16", out=str(tmp_path / "run"))
    folder = train(config, quiet=True, stop_after=1)
    state = load_checkpoint(folder / "last.pt")
    assert state["scaler"] == {}
    state["config"]["amp"] = "fp16"
    save_checkpoint(folder / "last.pt", state)
    train(resume=folder, quiet=True)
    assert load_checkpoint(folder / "last.pt")["epoch"] == 2


def test_deterministic_gpu_runs_are_bit_identical_also_after_a_mid_epoch_kill(tmp_path) -> None:
    args = ["--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", "2", "--batch-size", "100",
            "--checkpoint-every", "3", "--deterministic", "--device", "cuda", "--quiet"]
    for name, env in (("a", {}), ("b", {}), ("killed", {"RESNET_CIFAR_FAULT_KILL_AT_BATCH": "14"})):
        done = subprocess.run([sys.executable, "-m", "resnet_cifar", "train", *args, "--out", str(tmp_path / name)],
                              capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
        assert done.returncode == (-signal.SIGKILL if env else 0), done.stderr
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["tally"]["batches"] == 2  # mid-epoch 2
    done = subprocess.run([sys.executable, "-m", "resnet_cifar", "train", "--resume", str(tmp_path / "killed"),
                           "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    reference = load_file(tmp_path / "a" / "model.safetensors")
    for name in ("b", "killed"):
        weights = load_file(tmp_path / name / "model.safetensors")
        assert all(torch.equal(reference[key], weights[key]) for key in reference), name


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


def test_explanations_on_the_gpu_match_the_cpu_and_eval_draws_them(tmp_path) -> None:
    from resnet_cifar import evaluate
    from resnet_cifar.inference.explain import explain
    from resnet_cifar.inference.pretrained import load_pretrained

    model = load_pretrained("resnet20").model.cpu().eval()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # cuDNN's TF32 convolutions (PyTorch's default) moved single saliency pixels by up to 0.09 on an H200: compared
    # in full float32, what is left is the order of summation
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        for method in ("gradcam", "gradcam++", "saliency"):
            on_cpu = explain(model, images, method=method, top_k=2)
            on_gpu = explain(model.to(CUDA), images.to(CUDA), method=method, top_k=2)
            model.cpu()
            assert on_gpu.maps.device.type == "cpu" and torch.equal(on_gpu.classes, on_cpu.classes)
            assert (on_gpu.maps - on_cpu.maps).abs().max() < 1e-3, method
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    evaluate(load_pretrained("resnet20"), dataset="cifar10-sample", out_dir=tmp_path, device="cuda", explain=True)
    assert (tmp_path / "predictions-cam.png").is_file() and (tmp_path / "mistakes-cam.png").is_file()
