"""The named networks: ResNet-18..152 (4 stages), the paper's CIFAR ResNet-20..1202 (3 stages), their plain twins.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016): table 1 for the 4-stage nets,
section 4.2 for the CIFAR nets (depth 6n+2, widths 16/32/64, shortcut option A). Each model is one line of
the table below.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

from .blocks import BasicBlock, Bottleneck
from .registry import ModelSpec, register_model
from .resnet import Block, ResNet

IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)


def _residual(name: str, description: str, block: Block, layers: Sequence[int], widths: Sequence[int],
              shortcut: str, paper_params: str | None = None) -> ModelSpec:
    options = {"in_channels": 3, "stem": "cifar", "shortcut": shortcut, "zero_pad": "split",
               "zero_init_residual": False}
    return ModelSpec(name, "residual", description, partial(ResNet, block, layers, widths), options, paper_params)


def _plain(depth: int, layers: Sequence[int], widths: Sequence[int]) -> ModelSpec:
    return ModelSpec(f"plain{depth}", "plain", f"Plain-{depth}: ResNet-{depth} without shortcuts (degradation "
                     f"experiment)", partial(ResNet, BasicBlock, layers, widths, residual=False),
                     {"in_channels": 3, "stem": "cifar"})


MODELS = (
    _residual("resnet18", "ResNet-18: BasicBlock [2, 2, 2, 2], widths 64-512", BasicBlock, [2, 2, 2, 2],
              IMAGENET_WIDTHS, "B"),
    _residual("resnet34", "ResNet-34: BasicBlock [3, 4, 6, 3], widths 64-512", BasicBlock, [3, 4, 6, 3],
              IMAGENET_WIDTHS, "B"),
    _residual("resnet50", "ResNet-50: Bottleneck [3, 4, 6, 3], widths 64-512 (x4 out)", Bottleneck, [3, 4, 6, 3],
              IMAGENET_WIDTHS, "B"),
    _residual("resnet101", "ResNet-101: Bottleneck [3, 4, 23, 3], widths 64-512 (x4 out)", Bottleneck,
              [3, 4, 23, 3], IMAGENET_WIDTHS, "B"),
    _residual("resnet152", "ResNet-152: Bottleneck [3, 8, 36, 3], widths 64-512 (x4 out)", Bottleneck,
              [3, 8, 36, 3], IMAGENET_WIDTHS, "B"),
    *(_residual(f"resnet{6 * n + 2}", f"ResNet-{6 * n + 2} (paper, CIFAR): 3 x {n} BasicBlocks, widths 16-64",
                BasicBlock, [n, n, n], CIFAR_WIDTHS, "A", params)
      for n, params in ((3, "0.27"), (5, "0.46"), (7, "0.66"), (9, "0.85"), (18, "1.7"), (200, "19.4"))),
    *(_plain(6 * n + 2, [n, n, n], CIFAR_WIDTHS) for n in (3, 5, 7, 9, 18)),
    _plain(18, [2, 2, 2, 2], IMAGENET_WIDTHS),
    _plain(34, [3, 4, 6, 3], IMAGENET_WIDTHS),
)

for _spec in MODELS:
    register_model(_spec)
