"""One ResNet class for every depth and width: the 4-stage ImageNet-style nets and the paper's 3-stage CIFAR nets."""
from __future__ import annotations

from typing import Sequence, Type, Union

import torch
from torch import nn

from ..errors import ResnetCifarError
from .blocks import SHORTCUT_TYPES, ZERO_PAD_LAYOUTS, BasicBlock, Bottleneck, conv3x3, make_shortcut

Block = Type[Union[BasicBlock, Bottleneck]]
STEM_TYPES = ("cifar", "imagenet")


class ResNet(nn.Module):
    """A stem, ``len(layers)`` stages of blocks (stride 2 from the second on), global average pooling, a linear head.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` (ResNet-18) or ``[3, 3, 3]`` (ResNet-20).
        widths: channels of each stage's blocks before expansion, e.g. ``(64, 128, 256, 512)``.
        num_classes: outputs of the linear head.
        in_channels: channels of the input image.
        stem: ``"cifar"`` (3x3 conv, stride 1, no pooling) or ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool).
        shortcut: ``"A"`` (zero-padding identity, no parameters) or ``"B"`` (1x1 conv + BN) where the shape changes.
        zero_pad: where option A's zero channels go: ``"split"`` (half before, half after the input's channels, as
            the reference CIFAR implementation) or ``"end"`` (all after; resnet-cifar's layout before format 2).
        residual: ``False`` builds the plain twin: the same layers without any shortcut addition.
        zero_init_residual: start the last BN of every residual branch at 0, so each block starts as identity.
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        stem: str = "cifar",
        shortcut: str = "B",
        zero_pad: str = "split",
        residual: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        _check_options(num_classes, in_channels, stem, shortcut, zero_pad, residual, zero_init_residual)
        self.in_planes = widths[0]
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, self.in_planes)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.in_planes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        shortcut_kind = shortcut if residual else None
        reduction = 4 if stem == "imagenet" else 1
        # Where the feature maps are (timm's feature_info): after the stem and after each stage.
        self.feature_info = [{"name": "stem", "module": "maxpool", "num_chs": self.in_planes, "reduction": reduction}]
        for index, (blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if index == 0 else 2
            reduction *= stride
            self.add_module(f"layer{index + 1}", self._make_layer(block, width, blocks, stride, shortcut_kind,
                                                                  zero_pad))
            self.feature_info.append({"name": f"layer{index + 1}", "module": f"layer{index + 1}",
                                      "num_chs": self.in_planes, "reduction": reduction})
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_planes, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int, shortcut: str | None,
                    zero_pad: str) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            out_planes = planes * block.expansion
            layers.append(block(self.in_planes, planes, block_stride,
                                make_shortcut(shortcut, self.in_planes, out_planes, block_stride, zero_pad)))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_bn.weight)

    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1 .. layerN`` in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map after the last stage, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Globally pooled features (``pre_logits``) or logits of a feature map."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _check_options(num_classes: int, in_channels: int, stem: str, shortcut: str, zero_pad: str, residual: bool,
                   zero_init_residual: bool) -> None:
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ResnetCifarError(f"{name} must be a positive integer, got {value!r}")
    if stem not in STEM_TYPES:
        raise ResnetCifarError(f"unknown stem {stem!r}: choose one of {', '.join(STEM_TYPES)}")
    if shortcut not in SHORTCUT_TYPES:
        raise ResnetCifarError(f"unknown shortcut {shortcut!r}: choose 'A' (zero-padding) or 'B' (projection)")
    if zero_pad not in ZERO_PAD_LAYOUTS:
        raise ResnetCifarError(f"unknown zero_pad layout {zero_pad!r}: choose one of {', '.join(ZERO_PAD_LAYOUTS)}")
    if zero_init_residual and not residual:
        raise ResnetCifarError("zero_init_residual needs residual blocks: a plain net would start as all zeros")
