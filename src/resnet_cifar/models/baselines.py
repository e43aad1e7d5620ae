"""Non-residual baselines for ``experiment compare``: LeNet-5 and VGG-11/13/16/19 (with BatchNorm) for 32x32 inputs.

They are here to be compared against, as in the seed posts' LeNet/VGG/ResNet table; they are not ResNets.
LeNet-5 follows LeCun et al. 1998 with ReLU and max-pooling; VGG follows Simonyan & Zisserman 2015
(configurations A, B, D, E) with a BatchNorm after every convolution and one linear layer on the 512
features that five poolings leave of a 32x32 image.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import Builder, register_model

# Output channels of each 3x3 convolution; "M" is a 2x2 max-pool.
VGG_LAYOUTS: dict[str, Sequence[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class ConvBNReLU(nn.Module):
    """3x3 convolution, BatchNorm, ReLU (named ``conv``/``bn`` so BatchNorm folding finds the pair)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """VGG with BatchNorm: ``layout`` convolutions and poolings, then one linear classifier."""

    def __init__(self, layout: Sequence[int | str], *, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(ConvBNReLU(channels, int(item)))
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # 1x1 already for 32x32 inputs; keeps larger inputs working
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stage_outputs(self) -> list[tuple[str, nn.Module]]:
        """Where ``summary`` reports shapes: after each pooling and after the classifier."""
        pools = [m for m in self.features if isinstance(m, nn.MaxPool2d)]
        return [(f"pool{i + 1}", pool) for i, pool in enumerate(pools)] + [("fc", self.fc)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class LeNet5(nn.Module):
    """LeNet-5 for 32x32 images: two 5x5 convolutions with pooling, then 120-84-classes fully connected layers."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        # One ReLU module per place, as in the residual blocks (see models/blocks.py).
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.relu3 = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU(inplace=True)
        self.fc3 = nn.Linear(84, num_classes)

    def stage_outputs(self) -> list[tuple[str, nn.Module]]:
        return [("pool1", self.pool1), ("pool2", self.pool2), ("fc3", self.fc3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x)))))


def _vgg(name: str, doc: str) -> Builder:
    def builder(*, num_classes: int = 10, in_channels: int = 3) -> VGG:
        return VGG(VGG_LAYOUTS[name], num_classes=num_classes, in_channels=in_channels)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(builder)


@register_model
def lenet5(*, num_classes: int = 10, in_channels: int = 3) -> LeNet5:
    """LeNet-5 (non-residual baseline): 2 convolutions, 3 fully connected layers, 32x32 input only"""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)


vgg11 = _vgg("vgg11", "VGG-11 with BatchNorm (non-residual baseline): 8 convolutions, widths 64-512")
vgg13 = _vgg("vgg13", "VGG-13 with BatchNorm (non-residual baseline): 10 convolutions, widths 64-512")
vgg16 = _vgg("vgg16", "VGG-16 with BatchNorm (non-residual baseline): 13 convolutions, widths 64-512")
vgg19 = _vgg("vgg19", "VGG-19 with BatchNorm (non-residual baseline): 16 convolutions, widths 64-512")
