"""The named networks, one line each in the table below.

- ResNet-18..152 (4 stages) and the paper's CIFAR ResNet-20..1202 (3 stages, depth 6n+2, widths 16/32/64, shortcut
  A) with their plain twins: He et al., "Deep Residual Learning for Image Recognition" (2015), table 1 and
  section 4.2. ``se=True`` (seresnet18/34/50) adds squeeze-and-excitation (Hu et al. 2018).
- Pre-activation ResNets: He et al., "Identity Mappings in Deep Residual Networks" (2016): kuangliu's CIFAR-stem
  preact-resnet18..152 and the paper's preact-resnet110 (basic, shortcut A), -164 and -1001 (bottleneck).
- Wide ResNets wrn-D-K (any depth 6n+4 and width k): Zagoruyko and Komodakis (2016), pre-activation basic blocks
  of widths 16k/32k/64k after a 16-channel stem, projection shortcuts, optional dropout between the convolutions.
- ResNeXt-29 CxDd: Xie et al. (2017), section 5.3: three stages of three grouped bottlenecks, outputs 256/512/1024.
- ResNet-9 (models/resnet9.py): the DAWNBench CIFAR-10 net of Myrtle.ai's "How to train your ResNet"; resnet9-wN
  the same net with N channels after the prep layer instead of 64 (N, 2N, 4N, 8N through the stages).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

from ..errors import ResnetCifarError
from .blocks import BasicBlock, Bottleneck, PreActBlock, PreActBottleneck
from .registry import ModelSpec, register_model, register_pattern
from .resnet import Block, ResNet
from .resnet9 import REFERENCE_WIDTH, ResNet9, stage_widths

IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
RESNEXT_PLANES = (64, 128, 256)  # bottleneck planes per stage: outputs 256/512/1024


def _residual(name: str, description: str, block: Block, layers: Sequence[int], widths: Sequence[int],
              shortcut: str, paper_params: str | None = None, se: bool = False) -> ModelSpec:
    options = {"in_channels": 3, "stem": "cifar", "shortcut": shortcut, "zero_pad": "split",
               "zero_init_residual": False, "se": se}
    return ModelSpec(name, "residual", description, partial(ResNet, block, layers, widths), options, paper_params)


def _preact(name: str, description: str, block: Block, layers: Sequence[int], widths: Sequence[int],
            shortcut: str, paper_params: str | None = None) -> ModelSpec:
    options = {"in_channels": 3, "stem": "cifar", "shortcut": shortcut, "zero_pad": "split",
               "zero_init_residual": False, "se": False, "final_norm": True}
    return ModelSpec(name, "residual", description, partial(ResNet, block, layers, widths), options, paper_params)


def wide_resnet(depth: int, width: int, paper_params: str | None = None) -> ModelSpec:
    """WRN-``depth``-``width``: (depth - 4) / 6 pre-activation basic blocks per stage, widths 16k/32k/64k."""
    if depth < 10 or (depth - 4) % 6 or width < 1:
        raise ResnetCifarError(f"wrn-{depth}-{width} is no Wide ResNet: the depth must be 6n+4 with n >= 1 (10, 16, "
                               f"22, 28, 40, ...) and the width a positive integer")
    blocks = (depth - 4) // 6
    options: dict[str, Any] = {"in_channels": 3, "stem": "cifar", "zero_init_residual": False, "se": False,
                               "dropout": 0.0}
    return ModelSpec(f"wrn-{depth}-{width}", "residual", f"WRN-{depth}-{width} (Wide ResNet): 3 x {blocks} "
                     f"pre-activation BasicBlocks, widths {16 * width}-{64 * width}",
                     partial(ResNet, PreActBlock, [blocks] * 3, [w * width for w in CIFAR_WIDTHS], stem_width=16),
                     options, paper_params)


def resnext29(cardinality: int, group_width: int, paper_params: str | None = None) -> ModelSpec:
    """ResNeXt-29 with ``cardinality`` groups of ``group_width`` channels in the first stage (doubling per stage)."""
    if cardinality < 1 or group_width < 1:
        raise ResnetCifarError(f"resnext29-{cardinality}x{group_width}d is no ResNeXt: cardinality and width must "
                               f"be positive integers")
    options: dict[str, Any] = {"in_channels": 3, "stem": "cifar", "zero_init_residual": False, "se": False}
    return ModelSpec(f"resnext29-{cardinality}x{group_width}d", "residual", f"ResNeXt-29 ({cardinality}x"
                     f"{group_width}d): 3 x 3 grouped Bottlenecks, outputs 256-1024",
                     partial(ResNet, Bottleneck, [3, 3, 3], RESNEXT_PLANES, groups=cardinality,
                             width_per_group=group_width), options, paper_params)


def resnet9(width: int = REFERENCE_WIDTH) -> ModelSpec:
    """ResNet-9 with ``width`` channels after its prep layer: ``resnet9`` (64), else ``resnet9-wN``."""
    if width < 1:
        raise ResnetCifarError(f"resnet9-w{width} is no ResNet-9: the width must be a positive integer")
    widths = "-".join(map(str, stage_widths(width)))
    name = "resnet9" if width == REFERENCE_WIDTH else f"resnet9-w{width}"
    reference = "Myrtle.ai DAWNBench" if width == REFERENCE_WIDTH else "ResNet-9 narrowed"
    return ModelSpec(name, "residual", f"ResNet-9 ({reference}): conv-pool stages {widths}, 2 residual blocks",
                     partial(ResNet9, width=width), {"in_channels": 3, "zero_init_residual": False})


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
    *(_residual(f"seresnet{depth}", f"SE-ResNet-{depth}: ResNet-{depth} with squeeze-and-excitation (reduction 16)",
                block, layers, IMAGENET_WIDTHS, "B", se=True)
      for depth, block, layers in ((18, BasicBlock, [2, 2, 2, 2]), (34, BasicBlock, [3, 4, 6, 3]),
                                   (50, Bottleneck, [3, 4, 6, 3]))),
    *(_preact(f"preact-resnet{depth}", f"Pre-activation ResNet-{depth}: {block.__name__} {layers}, widths 64-512",
              block, layers, IMAGENET_WIDTHS, "B")
      for depth, block, layers in ((18, PreActBlock, [2, 2, 2, 2]), (34, PreActBlock, [3, 4, 6, 3]),
                                   (50, PreActBottleneck, [3, 4, 6, 3]), (101, PreActBottleneck, [3, 4, 23, 3]),
                                   (152, PreActBottleneck, [3, 8, 36, 3]))),
    _preact("preact-resnet110", "Pre-activation ResNet-110 (paper, CIFAR): 3 x 18 PreActBlocks, widths 16-64",
            PreActBlock, [18, 18, 18], CIFAR_WIDTHS, "A", "1.7"),
    *(_preact(f"preact-resnet{9 * n + 2}", f"Pre-activation ResNet-{9 * n + 2} (paper, CIFAR): 3 x {n} "
              f"PreActBottlenecks, widths 16-64 (x4 out)", PreActBottleneck, [n, n, n], CIFAR_WIDTHS, "B", params)
      for n, params in ((18, "1.7"), (111, "10.2"))),
    *(wide_resnet(depth, width, params) for depth, width, params in ((16, 8, "11.0"), (28, 10, "36.5"),
                                                                     (40, 4, "8.9"))),
    *(resnext29(cardinality, width, params) for cardinality, width, params in ((2, 64, None), (32, 4, None),
                                                                                (8, 64, "34.4"), (16, 64, "68.1"))),
    resnet9(),
    *(_plain(6 * n + 2, [n, n, n], CIFAR_WIDTHS) for n in (3, 5, 7, 9, 18)),
    _plain(18, [2, 2, 2, 2], IMAGENET_WIDTHS),
    _plain(34, [3, 4, 6, 3], IMAGENET_WIDTHS),
)

for _spec in MODELS:
    register_model(_spec)
register_pattern(r"wrn-(\d+)-(\d+)", "wrn-D-K", lambda match: wide_resnet(int(match[1]), int(match[2])))
register_pattern(r"resnet9-w(\d+)", "resnet9-wN", lambda match: resnet9(int(match[1])))
register_pattern(r"resnext29-(\d+)x(\d+)d", "resnext29-CxDd",
                 lambda match: resnext29(int(match[1]), int(match[2])))
