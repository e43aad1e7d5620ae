"""The named networks: ResNet-18..152 (4 stages), the paper's CIFAR ResNet-20..1202 (3 stages), their plain twins.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016): table 1 for the 4-stage nets,
section 4.2 for the CIFAR nets (depth 6n+2, widths 16/32/64, shortcut option A). Each model is one
builder made from a line of data, so adding a model is adding a line.
"""
from __future__ import annotations

from typing import Sequence

from .blocks import BasicBlock, Bottleneck
from .registry import Builder, register_model
from .resnet import Block, ResNet

IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)


def _residual(name: str, doc: str, block: Block, layers: Sequence[int], widths: Sequence[int],
              default_shortcut: str) -> Builder:
    def builder(*, num_classes: int = 10, in_channels: int = 3, stem: str = "cifar",
                shortcut: str = default_shortcut, zero_init_residual: bool = False) -> ResNet:
        return ResNet(block, layers, widths, num_classes=num_classes, in_channels=in_channels, stem=stem,
                      shortcut=shortcut, zero_init_residual=zero_init_residual)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(builder)


def _plain(name: str, doc: str, layers: Sequence[int], widths: Sequence[int]) -> Builder:
    def builder(*, num_classes: int = 10, in_channels: int = 3, stem: str = "cifar") -> ResNet:
        return ResNet(BasicBlock, layers, widths, num_classes=num_classes, in_channels=in_channels, stem=stem,
                      residual=False)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(builder)


resnet18 = _residual("resnet18", "ResNet-18: BasicBlock [2, 2, 2, 2], widths 64-512", BasicBlock, [2, 2, 2, 2],
                     IMAGENET_WIDTHS, "B")
resnet34 = _residual("resnet34", "ResNet-34: BasicBlock [3, 4, 6, 3], widths 64-512", BasicBlock, [3, 4, 6, 3],
                     IMAGENET_WIDTHS, "B")
resnet50 = _residual("resnet50", "ResNet-50: Bottleneck [3, 4, 6, 3], widths 64-512 (x4 out)", Bottleneck,
                     [3, 4, 6, 3], IMAGENET_WIDTHS, "B")
resnet101 = _residual("resnet101", "ResNet-101: Bottleneck [3, 4, 23, 3], widths 64-512 (x4 out)", Bottleneck,
                      [3, 4, 23, 3], IMAGENET_WIDTHS, "B")
resnet152 = _residual("resnet152", "ResNet-152: Bottleneck [3, 8, 36, 3], widths 64-512 (x4 out)", Bottleneck,
                      [3, 8, 36, 3], IMAGENET_WIDTHS, "B")

resnet20 = _residual("resnet20", "ResNet-20 (paper, CIFAR): 3 x 3 BasicBlocks, widths 16-64", BasicBlock,
                     [3, 3, 3], CIFAR_WIDTHS, "A")
resnet32 = _residual("resnet32", "ResNet-32 (paper, CIFAR): 3 x 5 BasicBlocks, widths 16-64", BasicBlock,
                     [5, 5, 5], CIFAR_WIDTHS, "A")
resnet44 = _residual("resnet44", "ResNet-44 (paper, CIFAR): 3 x 7 BasicBlocks, widths 16-64", BasicBlock,
                     [7, 7, 7], CIFAR_WIDTHS, "A")
resnet56 = _residual("resnet56", "ResNet-56 (paper, CIFAR): 3 x 9 BasicBlocks, widths 16-64", BasicBlock,
                     [9, 9, 9], CIFAR_WIDTHS, "A")
resnet110 = _residual("resnet110", "ResNet-110 (paper, CIFAR): 3 x 18 BasicBlocks, widths 16-64", BasicBlock,
                      [18, 18, 18], CIFAR_WIDTHS, "A")
resnet1202 = _residual("resnet1202", "ResNet-1202 (paper, CIFAR): 3 x 200 BasicBlocks, widths 16-64", BasicBlock,
                       [200, 200, 200], CIFAR_WIDTHS, "A")

plain20 = _plain("plain20", "Plain-20: ResNet-20 without shortcuts (degradation experiment)", [3, 3, 3], CIFAR_WIDTHS)
plain32 = _plain("plain32", "Plain-32: ResNet-32 without shortcuts (degradation experiment)", [5, 5, 5], CIFAR_WIDTHS)
plain44 = _plain("plain44", "Plain-44: ResNet-44 without shortcuts (degradation experiment)", [7, 7, 7], CIFAR_WIDTHS)
plain56 = _plain("plain56", "Plain-56: ResNet-56 without shortcuts (degradation experiment)", [9, 9, 9], CIFAR_WIDTHS)
plain110 = _plain("plain110", "Plain-110: ResNet-110 without shortcuts (degradation experiment)", [18, 18, 18],
                  CIFAR_WIDTHS)
plain18 = _plain("plain18", "Plain-18: ResNet-18 without shortcuts (degradation experiment)", [2, 2, 2, 2],
                 IMAGENET_WIDTHS)
plain34 = _plain("plain34", "Plain-34: ResNet-34 without shortcuts (degradation experiment)", [3, 4, 6, 3],
                 IMAGENET_WIDTHS)
