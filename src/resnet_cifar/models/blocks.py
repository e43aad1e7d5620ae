"""Residual building blocks: He et al., "Deep Residual Learning for Image Recognition" (2015: ``BasicBlock``,
``Bottleneck``, grouped for ResNeXt, Xie et al. 2017), "Identity Mappings in Deep Residual Networks" (2016:
``PreActBlock``, ``PreActBottleneck``, also the Wide ResNet's block) and squeeze-and-excitation (Hu et al. 2018).

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


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows or precedes it)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


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
                  zero_pad: str = "split", preact: bool = False) -> nn.Module | None:
    """The shortcut of one block: ``None`` (plain), identity, option A (zero-pad, ``zero_pad`` layout) or option B
    (1x1 conv + BN; a pre-activation block's projection is the 1x1 conv alone: its input is normalised already)."""
    if kind is None:
        return None
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    if kind == "A":
        extra = out_planes - in_planes
        return ZeroPadShortcut(stride, extra, extra // 2 if zero_pad == "split" else 0)
    if preact:
        return nn.Sequential(conv1x1(in_planes, out_planes, stride))
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): scale each channel by a gate in (0, 1) computed from the globally
    pooled map by two 1x1 convolutions (the paper's fully connected layers, with biases) around a ReLU."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


def squeeze_excite(se: bool, channels: int) -> SqueezeExcite | None:
    """The block's squeeze-and-excitation module (reduction 16), or None without ``se``."""
    return SqueezeExcite(channels) if se else None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 and the paper's CIFAR nets)."""

    expansion = 1
    preact = False

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None, *,
                 se: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = squeeze_excite(se, planes)
        self.shortcut = shortcut
        self.relu2 = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch."""
        return self.bn2

    def zero_init_last(self) -> None:
        """Start the residual branch's last BatchNorm at zero: the block starts as identity (``zero_init_residual``)."""
        nn.init.zeros_(self.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu2(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand to 4x ``planes`` (ResNet-50/101/152).

    With ``groups`` C and ``width_per_group`` d the 3x3 convolution is grouped and ``planes * d / 64 * C`` wide:
    the ResNeXt block (Xie et al. 2017, the form of their figure 3(c); torchvision's ``resnext50_32x4d`` is C=32,
    d=4); C=1, d=64 is ResNet's bottleneck.
    """

    expansion = 4
    preact = False

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None, *,
                 groups: int = 1, width_per_group: int = 64, se: bool = False) -> None:
        super().__init__()
        width = planes * width_per_group // 64 * groups
        self.conv1 = conv1x1(in_planes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.se = squeeze_excite(se, planes * self.expansion)
        self.shortcut = shortcut
        self.relu3 = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that closes the residual branch."""
        return self.bn3

    def zero_init_last(self) -> None:
        """Start the residual branch's last BatchNorm at zero: the block starts as identity (``zero_init_residual``)."""
        nn.init.zeros_(self.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu3(out)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU before each 3x3 convolution, nothing after the addition.

    A projection shortcut reads the pre-activated input, an identity or zero-padding shortcut the input itself (the
    layout of kuangliu/pytorch-cifar and of the Wide ResNet's PyTorch ports). ``dropout`` between the convolutions
    is the Wide ResNet's (Zagoruyko and Komodakis 2016).
    """

    expansion = 1
    preact = True
    conv_bn_pairs = (("conv1", "bn2"),)  # bn1 comes before conv1, with a ReLU between: only this pair folds

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None, *,
                 se: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.conv2 = conv3x3(planes, planes)
        self.se = squeeze_excite(se, planes)
        self.shortcut = shortcut
        self.projects = isinstance(shortcut, nn.Sequential)

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (its last layer is a convolution): the block starts as identity."""
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preactivated = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(preactivated)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is None:
            return out
        return out + self.shortcut(preactivated if self.projects else x)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016; their CIFAR ResNet-164 and -1001): BN-ReLU before each of the 1x1
    reduce, 3x3 (carrying the stride) and 1x1 expand-by-4 convolutions; shortcuts as ``PreActBlock``'s."""

    expansion = 4
    preact = True
    conv_bn_pairs = (("conv1", "bn2"), ("conv2", "bn3"))

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module | None, *,
                 se: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.se = squeeze_excite(se, planes * self.expansion)
        self.shortcut = shortcut
        self.projects = isinstance(shortcut, nn.Sequential)

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (its last layer is a convolution): the block starts as identity."""
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preactivated = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(preactivated)))
        out = self.conv3(self.relu3(self.bn3(self.conv2(out))))
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is None:
            return out
        return out + self.shortcut(preactivated if self.projects else x)
