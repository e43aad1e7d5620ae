"""ResNet-9: the DAWNBench CIFAR-10 winner line (Page, "How to train your ResNet", Myrtle.ai 2018).

Its own class, not an option of ``ResNet``: the stages downsample with a convolution and a max-pool rather than
a strided block, only the first and last stage carry a residual block (two convolutions, each followed by BN
and ReLU, added to its input with nothing after), and the head is a global max-pool and a bias-free linear layer
whose logits are scaled by 1/8. Layer names follow the reference: ``prep``, ``layer1..3``, ``fc``. ``width`` scales
it: the prep layer's channels, doubled at each stage (64: the reference; 32: a quarter of its arithmetic).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ResnetCifarError
from .blocks import conv3x3

REFERENCE_WIDTH = 64
LOGIT_SCALE = 0.125  # the reference's Mul(0.125) after the classifier


def stage_widths(width: int) -> tuple[int, int, int, int]:
    """The channels of the prep layer and the three stages: ``width``, doubled at each stage."""
    return width, 2 * width, 4 * width, 8 * width


class ConvBN(nn.Module):
    """3x3 convolution, BatchNorm, (``pool``) a 2x2 max-pool, ReLU.

    The reference pools after the ReLU; a ReLU commutes with a max-pool, so pooling first computes the same on a
    quarter of the values, and int8 quantisation (torchao's x86 fusion) accepts a residual block after it.
    """

    def __init__(self, in_planes: int, planes: int, pool: bool = False) -> None:
        super().__init__()
        self.conv = conv3x3(in_planes, planes)
        self.bn = nn.BatchNorm2d(planes)
        self.pool = nn.MaxPool2d(2) if pool else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x if self.pool is None else self.pool(x))


class Residual(nn.Module):
    """``x + relu(bn2(conv2(relu(bn1(conv1(x))))))``: the ResNet-9 residual block, post-activated in the branch."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        """Start the branch's last BatchNorm at zero: the block starts as identity."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return x + self.relu2(self.bn2(self.conv2(out)))


class ResNet9(nn.Module):
    """prep (w) -> layer1 (2w, pool, residual) -> layer2 (4w, pool) -> layer3 (8w, pool, residual) -> global
    max-pool -> linear (no bias) x 1/8; w = ``width``, 64 in the reference."""

    def __init__(self, *, width: int = REFERENCE_WIDTH, num_classes: int = 10, in_channels: int = 3,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        for name, value in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ResnetCifarError(f"{name} must be a positive integer, got {value!r}")
        prep, first, second, third = stage_widths(width)
        self.prep = ConvBN(in_channels, prep)
        self.layer1 = nn.Sequential(ConvBN(prep, first, pool=True), Residual(first))
        self.layer2 = nn.Sequential(ConvBN(first, second, pool=True))
        self.layer3 = nn.Sequential(ConvBN(second, third, pool=True), Residual(third))
        self.fc = nn.Linear(third, num_classes, bias=False)
        self.feature_info = [{"name": "stem", "module": "prep", "num_chs": prep, "reduction": 1}]
        self.feature_info += [{"name": f"layer{index}", "module": f"layer{index}", "num_chs": width,
                               "reduction": 2 ** index} for index, width in enumerate((first, second, third), 1)]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Residual):
                    module.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map after the last stage, before pooling."""
        return self.layer3(self.layer2(self.layer1(self.prep(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Globally max-pooled features (``pre_logits``) or scaled logits of a feature map."""
        # amax rather than AdaptiveMaxPool2d + flatten: exported to ONNX, the latter's Reshape defeats onnxruntime's
        # shape inference, which its int8 quantiser runs first.
        x = x.amax((2, 3))
        return x if pre_logits else self.fc(x) * LOGIT_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
