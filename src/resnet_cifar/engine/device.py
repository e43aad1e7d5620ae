"""Device choice and mixed precision."""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from ..errors import ResnetCifarError


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


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device`` (``None`` = float32).

    ``auto``: bf16 on CUDA GPUs that have it (else fp16), bf16 on CPUs with native bf16, float32 elsewhere.
    """
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None
    if mode == "fp16" and device.type == "cpu":
        raise ResnetCifarError("--amp fp16 needs a GPU; on the CPU use --amp bf16 or --amp off")
    return torch.bfloat16 if mode == "bf16" else torch.float16


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
