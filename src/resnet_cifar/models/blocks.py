"""Residual building blocks (He et al., "Deep Residual Learning for Image Recognition", 2015).

A block is given its shortcut as a module: ``nn.Identity`` or a projection/zero-padding shortcut for a
residual block, or ``None`` for a *plain* block that drops the addition (the degradation experiment).
Every activation is its own module, called once: forward hooks then see one output per module, and
torch.export-based quantisers (which group nodes by the module that made them) see one ReLU per place.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_TYPES = ("A", "B")
# Where option A puts its zero channels: "split" half before and half after the input's channels, as the most used
# reference implementation of the paper's CIFAR nets does (its published weights need it); "end" all after them,
# the layout of resnet-cifar before model format 2 (models/layouts.py converts such weights exactly).
ZERO_PAD_LAYOUTS = ("split", "end")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: parameter-free shortcut; subsample by ``stride`` and add ``extra_channels`` zero channels, the
    first ``zeros_before`` of them before the input's channels and the rest after."""

    def __init__(self, stride: int, extra_channels: int, zeros_before: int = 0) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels
        self.zeros_before = zeros_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.zeros_before, self.extra_channels - self.zeros_before))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}, zeros_before={self.zeros_before}"


def make_shortcut(kind: str | None, in_planes: int, out_planes: int, stride: int,
                  zero_pad: str = "split") -> nn.Module | None:
    """The shortcut of one block: ``None`` (plain), identity, option A (zero-pad, ``zero_pad`` layout) or option B
    (1x1 conv + BN)."""
    if kind is None:
        return None
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    if kind == "A":
        extra = out_planes - in_planes
        return ZeroPadShortcut(stride, extra, extra // 2 if zero_pad == "split" else 0)
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 and the paper's CIFAR nets)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = shortcut
        self.relu2 = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu2(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4 (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = shortcut
        self.relu3 = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu3(out)
