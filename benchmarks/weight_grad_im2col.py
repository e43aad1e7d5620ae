"""Weight gradients of ResNet-18's 3x3 convolutions: oneDNN's kernels against an im2col + one matrix product.

    python benchmarks/weight_grad_im2col.py [--batch 128] [--repeats 5]

bf16, channels-last, on the CPU. For each layer shape prints the forward convolution's time, oneDNN's
weight-gradient kernel (``aten.convolution_backward`` asked for the weight only) and the im2col alternative
(``F.unfold``, then grad_out^T @ columns), with TFLOP/s and the alternative's largest relative difference.
The BENCHMARKS section "What bounds the training step on this CPU" quotes its output.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
import torch.nn.functional as F

# (in channels, out channels, input side, stride) of ResNet-18's 3x3 convolutions on 32x32 CIFAR images
SHAPES = ((64, 64, 32, 1), (64, 128, 32, 2), (128, 128, 16, 1), (128, 256, 16, 2), (256, 256, 8, 1),
          (256, 512, 8, 2), (512, 512, 4, 1))


def milliseconds(run: Callable[[], torch.Tensor], repeats: int) -> float:
    """Mean milliseconds of ``repeats`` calls after one untimed call."""
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="(default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (default 5)")
    args = parser.parse_args()
    n = args.batch
    for cin, cout, side, stride in SHAPES:
        images = torch.randn(n, cin, side, side, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(cout, cin, 3, 3, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        grad_out = torch.randn_like(F.conv2d(images, weight, stride=stride, padding=1))
        flops = 2 * grad_out.numel() * cin * 9

        def forward() -> torch.Tensor:
            return F.conv2d(images, weight, stride=stride, padding=1)

        def onednn() -> torch.Tensor:
            return torch.ops.aten.convolution_backward(grad_out, images, weight, None, [stride] * 2, [1, 1], [1, 1],
                                                       False, [0, 0], 1, [False, False, True])[1]

        def im2col() -> torch.Tensor:
            columns = F.unfold(images, 3, padding=1, stride=stride).transpose(1, 2).reshape(-1, cin * 9)
            return (grad_out.permute(0, 2, 3, 1).reshape(-1, cout).t() @ columns).view(cout, cin, 3, 3)

        reference = onednn().float()
        difference = ((im2col().float() - reference).abs().max() / reference.abs().max()).item()
        times = {name: milliseconds(run, args.repeats) for name, run in
                 (("forward", forward), ("oneDNN weight grad", onednn), ("im2col weight grad", im2col))}
        cells = "  ".join(f"{name} {ms:6.1f} ms ({flops / ms / 1e9:.2f} TFLOP/s)" for name, ms in times.items())
        print(f"{cin:>3} -> {cout:<3} {side:>2}x{side:<2} stride {stride}:  {cells}  difference {difference:.1e}")


if __name__ == "__main__":
    main()
