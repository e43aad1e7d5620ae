"""``resnet-cifar bench``: images/s of training steps, inference and the data pipeline on the current device.

Training and inference run on synthetic tensors already on the device (pure throughput); the data pipeline
row times the on-device loader (crop, flip, normalise) over synthetic uint8 images. Model rows also give the
arithmetic rate this amounts to and its share of the device's practical peak (``flops``).
"""
from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .core.device import autocast, cpu_supports_bf16, set_determinism, synchronize
from .core.saved_model import model_info
from .data import ImageSet
from .data.loader import Augment, BatchLoader
from .flops import model_flops, practical_peak
from .inference.backends import installed, runnable
from .inference.int8 import int8_available, quantize_int8
from .inference.trained import TrainedModel
from .models import create_model
from .models.fold import fold_batchnorm
from .training.config import TrainConfig
from .training.loop import backward_step, forward_loss
from .training.optim import build_optimizer


@dataclass(frozen=True)
class Variant:
    """One combination of speed options."""

    name: str
    amp: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    fold_bn: bool = False  # inference only
    int8: bool = False  # inference on the CPU only: torchao (folded, quantised, compiled), or the runtime's int8
    runtime: str | None = None  # inference on the CPU only: the model exported and run by onnxruntime/openvino


TRAIN_VARIANTS = (Variant("float32"), Variant("bf16", torch.bfloat16),
                  Variant("bf16 + channels_last", torch.bfloat16, channels_last=True))
INFER_VARIANTS = (Variant("float32"), Variant("float32 + folded BN", fold_bn=True),
                  Variant("bf16 + channels_last + folded BN", torch.bfloat16, channels_last=True, fold_bn=True),
                  Variant("int8 + channels_last + folded BN", channels_last=True, fold_bn=True, int8=True),
                  Variant("onnxruntime float32", runtime="onnxruntime"),
                  Variant("openvino float32", runtime="openvino"),
                  Variant("openvino int8 (NNCF)", runtime="openvino", int8=True),
                  Variant("onnxruntime int8 (QDQ)", runtime="onnxruntime", int8=True))


def _images_per_second(step: Callable[[], None], images_per_step: int, device: torch.device, steps: int,
                       warmup: int) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return images_per_step * steps / (time.perf_counter() - start)


def _prepare(model: nn.Module, batch: torch.Tensor, variant: Variant) -> tuple[nn.Module, torch.Tensor]:
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    return (torch.compile(model) if variant.compile else model), batch


def train_throughput(name: str, batch_size: int, device: torch.device, variant: Variant, steps: int = 5,
                     warmup: int = 2) -> float:
    """Training images/s of the step ``train`` runs (the default recipe's optimizer, fused on CUDA, and loss;
    cuDNN autotuning as in training), on one synthetic batch."""
    config = TrainConfig()
    set_determinism(config.deterministic, device)
    model = create_model(name).to(device).train()
    optimizer = build_optimizer(config, model)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    network, images = _prepare(model, images, variant)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16 and float32 need no loss scaling

    def step() -> None:
        _, loss = forward_loss(network, images, labels, criterion, variant.amp)
        backward_step(loss, optimizer, scaler)

    return _images_per_second(step, batch_size, device, steps, warmup)


def inference_throughput(name: str, batch_size: int, device: torch.device, variant: Variant, steps: int = 5,
                         warmup: int = 2) -> float:
    """Inference images/s in eval mode under ``torch.inference_mode``."""
    model = create_model(name).to(device).eval()
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    if variant.runtime:
        info = model_info(name, {}, [str(i) for i in range(10)], (3, 32, 32), [0.5] * 3, [0.25] * 3)
        # int8: calibrated on random tensors, enough to time the quantised graph.
        calibration = images.numpy() if variant.int8 else None
        network = runnable(TrainedModel(model, info), variant.runtime, calibration)
    elif variant.int8:
        network: nn.Module = quantize_int8(model, [images], chunk=batch_size)
    else:
        if variant.fold_bn:
            model = fold_batchnorm(model)
        network, images = _prepare(model, images, variant)

    @torch.inference_mode()
    def step() -> None:
        with autocast(device, variant.amp):
            network(images)

    return _images_per_second(step, batch_size, device, steps, warmup)


def data_throughput(batch_size: int, device: torch.device, images: int = 10_000) -> float:
    """Data-pipeline images/s: an epoch of the on-device loader with crop, flip and normalisation."""
    data = ImageSet(torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8),
                    torch.randint(0, 10, (images,)), [str(i) for i in range(10)])
    loader = BatchLoader(data, batch_size, device=device, mean=[0.5] * 3, std=[0.25] * 3, shuffle=True,
                         augment=Augment())

    def epoch() -> None:
        for _ in loader.epoch(0):
            pass

    return _images_per_second(epoch, images, device, steps=3, warmup=1)  # every image once, the last batch short


def run_bench(models: Sequence[str], batch_sizes: Sequence[int], device: torch.device, *, steps: int, warmup: int,
              compile_too: bool = False) -> list[dict]:
    """One row per (task, model, batch size, variant): images/s, and for the models the arithmetic it amounts to.

    ``tflops`` counts convolutions and matrix products (``flops.model_flops``); ``peak_share`` divides it by
    ``peak_tflops``, the device's practical peak in the row's precision (``flops.practical_peak``), none for int8.
    """
    def with_compile(variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        last = [variant for variant in variants if not variant.int8][-1]
        extra = Variant(f"{last.name} + compile", last.amp, last.channels_last, True, last.fold_bn)
        return variants + (extra,) if compile_too else variants

    def runs_here(variant: Variant) -> bool:
        if variant.runtime:
            needs_nncf = variant.int8 and variant.runtime == "openvino"
            return device.type == "cpu" and installed(variant.runtime) and (not needs_nncf or installed("nncf"))
        if variant.int8:
            return device.type == "cpu" and int8_available()
        return not (variant.amp is torch.bfloat16 and device.type == "cpu" and not cpu_supports_bf16())

    peak_of = functools.cache(lambda dtype: practical_peak(device, dtype))
    flops_of = functools.cache(model_flops)  # per image: the same for every batch size
    rows = []
    for name, batch in itertools.product(models, batch_sizes):
        for task, measure, variants in (("train", train_throughput, TRAIN_VARIANTS),
                                        ("inference", inference_throughput, INFER_VARIANTS)):
            flops = flops_of(name, training=task == "train")
            for variant in filter(runs_here, with_compile(variants)):
                rate = measure(name, batch, device, variant, steps=steps, warmup=warmup)
                dtype = variant.amp or torch.float32
                rows.append(_row(task, name, batch, variant.name, rate, flops=flops,
                                 precision="int8" if variant.int8 else str(dtype).removeprefix("torch."),
                                 peak=None if variant.int8 else peak_of(dtype)))
    for batch in batch_sizes:
        rows.append(_row("data", "-", batch, "on-device crop+flip+normalise", data_throughput(batch, device)))
    return rows


def _row(task: str, model: str, batch: int, variant: str, images_per_s: float, *, flops: float | None = None,
         precision: str | None = None, peak: float | None = None) -> dict:
    tflops = images_per_s * flops / 1e12 if flops else None
    return {"task": task, "model": model, "batch": batch, "variant": variant, "precision": precision,
            "images_per_s": images_per_s, "tflops": tflops, "peak_tflops": peak / 1e12 if peak else None,
            "peak_share": tflops * 1e12 / peak if tflops and peak else None}


def bench_report(rows: list[dict], device: torch.device) -> dict:
    """The rows with what they were measured on: device, torch version, CPU threads (``--json`` prints this)."""
    return {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}


def format_report(report: dict) -> str:
    """A plain-text table of a ``bench_report``, with a line on how the arithmetic columns were reached."""
    def number(value: float | None, template: str) -> str:
        return "-" if value is None else template.format(value)

    rows = report["rows"]
    lines = [f"device: {report['device']}  torch {report['torch']}  CPU threads {report['threads']}",
             f"{'task':<10} {'model':<10} {'batch':>5}  {'variant':<36} {'images/s':>10} {'TFLOP/s':>8} "
             f"{'of peak':>7}"]
    lines += [f"{r['task']:<10} {r['model']:<10} {r['batch']:>5}  {r['variant']:<36} {r['images_per_s']:>10.1f} "
              f"{number(r['tflops'], '{:.3f}'):>8} {number(r['peak_share'], '{:.0%}'):>7}" for r in rows]
    peaks = sorted({(r["precision"], r["peak_tflops"]) for r in rows if r["peak_tflops"]})
    lines.append("TFLOP/s: convolutions and matrix products only (int8 rows: integer operations); peak: the faster "
                 "of a large matrix product and convolution measured here ("
                 + ", ".join(f"{dtype} {peak:.3f}" for dtype, peak in peaks) + " TFLOP/s)")
    return "\n".join(lines)
