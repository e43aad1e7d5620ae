"""Device choice and mixed precision."""
from __future__ import annotations

import contextlib
import os
from typing import ContextManager

import torch

from ..errors import ResnetCifarError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ResnetCifarError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ResnetCifarError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


# Flags to treat as absent (space-separated), so that one host can test the choices made for another: `make
# test-avx2` hides native bf16 and VNNI, and makes oneDNN and ATen run their AVX2 kernels, as on an AVX2-only CPU.
HIDDEN_FLAGS_VARIABLE = "RESNET_CIFAR_HIDE_CPU_FLAGS"


def _cpu_flags() -> set[str]:
    """The instruction-set flags of this CPU, less those named in ``RESNET_CIFAR_HIDE_CPU_FLAGS``."""
    return _cpu_flags_listed() - set(os.environ.get(HIDDEN_FLAGS_VARIABLE, "").split())


def _cpu_flags_listed() -> set[str]:
    """The flags as Linux lists them (none where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return set()


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def cpu_has_vnni() -> bool:
    """Whether this CPU multiplies u8 x s8 with 32-bit sums (AVX-512 VNNI, AVX-VNNI or AMX). Without it oneDNN's
    int8 kernels add pairs of products in saturating 16-bit lanes, so activations must keep to 7 bits."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & _cpu_flags())


def cpu_description() -> str:
    """The CPU's model name, family and model, and whether it has native bf16 and VNNI (what decides speed here):
    the line every benchmark row and model card names its machine by."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}), native bf16: {cpu_supports_bf16()}, VNNI: {cpu_has_vnni()}")


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the GPU ``device`` computes in bfloat16 natively (Ampere, compute capability 8.0, and later).

    Not ``torch.cuda.is_bf16_supported()``: by default that also says yes where bf16 is only emulated (V100, T4),
    which is slower than fp16, and it asks the current device (cuda:0 before ``set_device``) rather than ours.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device`` (``None`` = float32).

    ``auto``: bf16 on CUDA GPUs that have it natively (else fp16 with a gradient scaler), bf16 on CPUs with
    native bf16, float32 elsewhere.
    """
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None
    if mode == "fp16" and device.type == "cpu":
        raise ResnetCifarError("--amp fp16 needs a GPU; on the CPU use --amp bf16 or --amp off")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def resolve_channels_last(setting: bool | None, device: torch.device) -> bool:
    """``--channels-last`` or, when not given, on for CUDA GPUs only: cuDNN's bf16/fp16 convolutions run on
    channels-last tensors natively (others are transposed around every convolution); on CPUs it is a choice."""
    return device.type == "cuda" if setting is None else setting


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (a no-op on the CPU), so that timers are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """``--deterministic``: deterministic kernels only (cuDNN autotuning off); otherwise let cuDNN pick the fastest.

    Both settings are process-wide, so each run sets them explicitly rather than inherit an earlier run's.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
