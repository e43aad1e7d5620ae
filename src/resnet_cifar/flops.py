"""Arithmetic per image and the device's practical peak, so that throughput can be read as a share of the peak."""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .core.device import synchronize
from .models import create_model

# (square matrix size, convolution batch) for the peak: big enough to reach it, quick enough to take well under
# a second per product on this device type.
_PEAK_SHAPES = {"cpu": (2048, 64), "cuda": (8192, 1024)}
_CONV_CHANNELS, _CONV_SIZE = 256, 16


def model_flops(name: str, *, training: bool, num_classes: int = 10, image_size: int = 32, **options: object,
                ) -> float:
    """Floating-point operations per image: one forward pass, or forward and backward when ``training``.

    Counted by torch's ``FlopCounterMode`` on shapes alone (the model, with its ``options``, is built on the meta
    device): matrix products and convolutions, two operations per multiply-add; normalisation and elementwise work
    not counted.
    """
    batch = 2
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, **options).train(training)
        images = torch.randn(batch, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        if training:
            model(images).sum().backward()
        else:
            with torch.no_grad():
                model(images)
    return counter.get_total_flops() / batch


def practical_peak(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """FLOP/s in ``dtype`` on ``device``: the faster of a large square matrix product and a large 3x3 convolution.

    Each is timed ``repeats`` times and the fastest run kept. The convolution (256 channels in and out, 16x16,
    channels-last) is there for CPUs, whose oneDNN convolutions can outrun torch's float32 matrix product. In
    float32 on CUDA both use TF32 when cuDNN's convolutions may (PyTorch's default for them).
    """
    size, batch = _PEAK_SHAPES.get(device.type, _PEAK_SHAPES["cpu"])
    left, right = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    images = torch.randn(batch, _CONV_CHANNELS, _CONV_SIZE, _CONV_SIZE, device=device, dtype=dtype)
    weight = torch.randn(_CONV_CHANNELS, _CONV_CHANNELS, 3, 3, device=device, dtype=dtype)
    images, weight = (t.contiguous(memory_format=torch.channels_last) for t in (images, weight))
    conv_flops = 2 * batch * _CONV_SIZE**2 * _CONV_CHANNELS**2 * 9
    with _matmul_tf32_as_cudnn():
        matmul_rate = 2 * size**3 / _fastest(lambda: left @ right, device, repeats)
        conv_rate = conv_flops / _fastest(lambda: F.conv2d(images, weight, padding=1), device, repeats)
    return max(matmul_rate, conv_rate)


def _fastest(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` timed calls, after one untimed call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


@contextlib.contextmanager
def _matmul_tf32_as_cudnn() -> Iterator[None]:
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
