"""Non-residual baselines for ``experiment compare``: LeNet-5 and VGG-11/13/16/19 (with BatchNorm) for 32x32 inputs.

They are here to be compared against, as in the seed posts' LeNet/VGG/ResNet table; they are not ResNets.
LeNet-5 follows LeCun et al. 1998 with ReLU and max-pooling; VGG follows Simonyan & Zisserman 2015
(configurations A, B, D, E) with a BatchNorm after every convolution and one linear layer on the 512
features that five poolings leave of a 32x32 image.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from .registry import ModelSpec, register_model

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
        pools = [(index, layers[index - 1].conv.out_channels) for index, layer in enumerate(layers)
                 if isinstance(layer, nn.MaxPool2d)]
        self.feature_info = [{"name": f"pool{number}", "module": f"features.{index}", "num_chs": width,
                              "reduction": 2 ** number} for number, (index, width) in enumerate(pools, 1)]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map after the last pooling."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooled features (``pre_logits``) or logits of a feature map."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
        self.feature_info = [{"name": "pool1", "module": "pool1", "num_chs": 6, "reduction": 2},
                             {"name": "pool2", "module": "pool2", "num_chs": 16, "reduction": 4}]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 16 x 5 x 5 feature map of the convolutions."""
        x = self.pool1(self.relu1(self.conv1(x)))
        return self.pool2(self.relu2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The fully connected layers: their last hidden features (``pre_logits``) or the logits."""
        x = self.relu4(self.fc2(self.relu3(self.fc1(torch.flatten(x, 1)))))
        return x if pre_logits else self.fc3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


MODELS = (
    ModelSpec("lenet5", "baseline", "LeNet-5 (non-residual baseline): 2 convolutions, 3 fully connected layers, 32x32 "
              "input only", LeNet5, {"in_channels": 3}),
    *(ModelSpec(name, "baseline", f"VGG-{name[3:]} with BatchNorm (non-residual baseline): {convolutions} "
                f"convolutions, widths 64-512", partial(VGG, VGG_LAYOUTS[name]), {"in_channels": 3})
      for name, convolutions in (("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16))),
)

for _spec in MODELS:
    register_model(_spec)
