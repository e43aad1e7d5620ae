"""Arithmetic per image agrees with the layer shapes; the practical peak is measured."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_cifar import flops
from resnet_cifar.flops import model_flops, practical_peak
from resnet_cifar.models import create_model


def _multiply_adds_from_shapes(name: str, num_classes: int) -> int:
    """Multiply-adds of one forward pass, summed from each convolution's and linear layer's output shape."""
    model, total = create_model(name, num_classes=num_classes).eval(), 0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * kernel
        elif isinstance(module, nn.Linear):
            total += output[0].numel() * module.in_features

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    return total


@pytest.mark.parametrize("name, num_classes", [("resnet18", 10), ("resnet20", 100), ("resnet50", 10)])
def test_inference_flops_are_twice_the_multiply_adds_of_the_layers(name: str, num_classes: int) -> None:
    flops = model_flops(name, training=False, num_classes=num_classes)
    assert flops == 2 * _multiply_adds_from_shapes(name, num_classes)


def test_training_counts_the_backward_pass_too() -> None:
    # Backward computes a gradient for the inputs and one for the weights of every layer, except the input
    # gradient of the first convolution (the images need none): a little under three forward passes.
    ratio = model_flops("resnet18", training=True) / model_flops("resnet18", training=False)
    assert 2.9 < ratio < 3.0


@pytest.mark.parametrize("matmul_s, conv_s", [(1.0, 4.0), (4.0, 1.0)])
def test_practical_peak_is_the_faster_of_the_matrix_product_and_the_convolution(monkeypatch, matmul_s: float,
                                                                                conv_s: float) -> None:
    timings = iter([matmul_s, conv_s])
    monkeypatch.setattr(flops, "_fastest", lambda run, device, repeats: next(timings))
    size, batch = flops._PEAK_SHAPES["cpu"]
    matmul = 2 * size**3
    conv = 2 * batch * flops._CONV_SIZE**2 * flops._CONV_CHANNELS**2 * 9
    assert practical_peak(torch.device("cpu"), torch.float32) == max(matmul / matmul_s, conv / conv_s)


def test_fastest_keeps_the_quickest_of_the_timed_runs(monkeypatch) -> None:
    readings = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # timed runs of 3, 1 and 2 seconds
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(readings))
    runs = []
    assert flops._fastest(lambda: runs.append(1), torch.device("cpu"), repeats=3) == 1.0
    assert len(runs) == 4  # one untimed call first
