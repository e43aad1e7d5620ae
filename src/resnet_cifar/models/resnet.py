"""One ResNet class for every depth, width and block: the 4-stage ImageNet-style nets, the paper's 3-stage CIFAR nets,
pre-activation ResNets, Wide ResNets, ResNeXt and their squeeze-and-excitation versions."""
from __future__ import annotations

from typing import Sequence, Type, Union

import torch
from torch import nn

from ..errors import ResnetCifarError
from .blocks import (
    SHORTCUT_TYPES,
    ZERO_PAD_LAYOUTS,
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    conv1x1,
    conv3x3,
    make_shortcut,
)

Block = Type[Union[BasicBlock, Bottleneck, PreActBlock, PreActBottleneck]]
# cifar: 3x3 conv, stride 1; imagenet: 7x7/2 conv + 3x3/2 max-pool; pointwise: 1x1 conv (kuangliu's ResNeXt29)
STEM_TYPES = ("cifar", "imagenet", "pointwise")


class ResNet(nn.Module):
    """A stem, ``len(layers)`` stages of blocks (stride 2 from the second on), global average pooling, a linear head.

    With pre-activation blocks the stem is its convolution alone (each block normalises its own input) and a
    BatchNorm and ReLU close the last stage (``final_norm``), as He et al. (2016) and the Wide ResNet do.

    Args:
        block: ``BasicBlock``, ``Bottleneck``, ``PreActBlock`` or ``PreActBottleneck``.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` (ResNet-18) or ``[3, 3, 3]`` (ResNet-20).
        widths: channels of each stage's blocks before expansion, e.g. ``(64, 128, 256, 512)``.
        num_classes: outputs of the linear head.
        in_channels: channels of the input image.
        stem: ``"cifar"`` (3x3 conv, stride 1, no pooling), ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool) or
            ``"pointwise"`` (1x1 conv, stride 1: kuangliu's ResNeXt29).
        stem_width: channels of the stem (default ``widths[0]``; the Wide ResNet's is 16 at any width).
        shortcut: ``"A"`` (zero-padding identity, no parameters) or ``"B"`` (1x1 conv + BN) where the shape changes.
        zero_pad: where option A's zero channels go: ``"split"`` (half before, half after the input's channels, as
            the reference CIFAR implementation) or ``"end"`` (all after; resnet-cifar's layout before format 2).
        residual: ``False`` builds the plain twin: the same layers without any shortcut addition.
        zero_init_residual: start the last layer of every residual branch at 0 (its BN, or a pre-activation
            block's last conv), so each block starts as identity.
        groups, width_per_group: ResNeXt's cardinality C and bottleneck width d (``Bottleneck`` only).
        se: a squeeze-and-excitation module (reduction 16) at the end of every residual branch.
        dropout: dropout probability between the two convolutions of a ``PreActBlock`` (the Wide ResNet's).
        final_norm: BN-ReLU after the last stage of a pre-activation net (kuangliu's PreActResNet has none).
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
        stem_width: int | None = None,
        shortcut: str = "B",
        zero_pad: str = "split",
        residual: bool = True,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        se: bool = False,
        dropout: float = 0.0,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        _check_options(num_classes, in_channels, stem, shortcut, zero_pad, residual, zero_init_residual)
        block_options = _block_options(block, groups, width_per_group, se, dropout)
        self.preact = block.preact
        self.in_planes = stem_width or widths[0]
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, self.in_planes)
        elif stem == "pointwise":
            self.conv1 = conv1x1(in_channels, self.in_planes)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.in_planes, kernel_size=7, stride=2, padding=3, bias=False)
        if not self.preact:
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
                                                                  zero_pad, block_options))
            self.feature_info.append({"name": f"layer{index + 1}", "module": f"layer{index + 1}",
                                      "num_chs": self.in_planes, "reduction": reduction})
        self.num_stages = len(layers)
        self.final_bn = nn.BatchNorm2d(self.in_planes) if self.preact and final_norm else None
        if self.final_bn is not None:
            self.final_relu = nn.ReLU(inplace=True)
            self.feature_info[-1]["module"] = "final_relu"  # the last map as the head sees it (timm's "norm")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_planes, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int, shortcut: str | None,
                    zero_pad: str, block_options: dict) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            out_planes = planes * block.expansion
            layers.append(block(self.in_planes, planes, block_stride,
                                make_shortcut(shortcut, self.in_planes, out_planes, block_stride, zero_pad,
                                              block.preact), **block_options))
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
                if isinstance(module, (BasicBlock, Bottleneck, PreActBlock, PreActBottleneck)):
                    module.zero_init_last()

    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1 .. layerN`` in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map after the last stage, before pooling."""
        x = self.conv1(x)
        if not self.preact:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for stage in self.stages():
            x = stage(x)
        if self.final_bn is not None:
            x = self.final_relu(self.final_bn(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Globally pooled features (``pre_logits``) or logits of a feature map."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _block_options(block: Block, groups: int, width_per_group: int, se: bool, dropout: float) -> dict:
    """The keyword options ``block`` is built with; an option it has no use for is a ``ResnetCifarError``."""
    options: dict = {"se": bool(se)}
    if (groups, width_per_group) != (1, 64):
        if block is not Bottleneck:
            raise ResnetCifarError(f"groups and width_per_group (ResNeXt) need Bottleneck blocks, not "
                                   f"{block.__name__}")
        for name, value in (("groups", groups), ("width_per_group", width_per_group)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ResnetCifarError(f"{name} must be a positive integer, got {value!r}")
        options.update(groups=groups, width_per_group=width_per_group)
    if dropout:
        if block is not PreActBlock:
            raise ResnetCifarError(f"dropout between the convolutions is the Wide ResNet's: it needs PreActBlock, not "
                                   f"{block.__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ResnetCifarError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        options["dropout"] = float(dropout)
    return options


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
