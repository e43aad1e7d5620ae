"""Option A's two zero-channel layouts (``zero_pad="end"`` and ``"split"``) compute the same function up to an order
of the channels inside each stage, so weights trained with one convert exactly to the other.

Where a stage widens, each layout puts the input's channels at another offset among the zeros. Renumbering the
channels of every stage after such a transition (the output channels of each block's last convolution and
BatchNorm, the input channels of the next block's first convolution, and the head's inputs) turns one network
into the other.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ResnetCifarError
from .blocks import Bottleneck, ZeroPadShortcut
from .registry import create_model, model_spec
from .resnet import ResNet

# The layout of every model saved before model and checkpoint format 2, which did not record it.
LEGACY_ZERO_PAD = "end"


def with_zero_pad(name: str, options: dict, layout: str | None = None) -> dict:
    """``options`` of model ``name`` with its zero-pad layout written out (``layout``, or the model's default) when
    it has option A shortcuts and none is given; other models' options unchanged (also for unknown names)."""
    try:
        spec = model_spec(name)
    except ResnetCifarError:
        return options
    if "zero_pad" not in spec.options or "zero_pad" in options:
        return options
    if options.get("shortcut", spec.options.get("shortcut")) != "A":
        return options
    return {**options, "zero_pad": layout or spec.options["zero_pad"]}


def convert_zero_pad(weights: dict[str, torch.Tensor], name: str, from_layout: str, to_layout: str,
                     **options: object) -> dict[str, torch.Tensor]:
    """``weights`` of model ``name`` (with ``options``) trained with ``from_layout``, for the same model built with
    ``to_layout``: both compute the same outputs."""
    source = create_model(name, **{**options, "zero_pad": from_layout})
    target = create_model(name, **{**options, "zero_pad": to_layout})
    converted = dict(weights)
    if not isinstance(source, ResNet):
        return converted
    # new_index[c]: where channel c of the source's current space sits in the target's.
    new_index = torch.arange(source.bn1.num_features)  # the stem's channels keep their order
    for stage_number, (old_stage, new_stage) in enumerate(zip(source.stages(), target.stages()), 1):
        for block_number, (old_block, new_block) in enumerate(zip(old_stage, new_stage)):
            prefix = f"layer{stage_number}.{block_number}."
            _take(converted, prefix + "conv1.weight", _sources(new_index), dim=1)
            if isinstance(old_block.shortcut, ZeroPadShortcut):
                new_index = _through_zero_pad(new_index, old_block.shortcut, new_block.shortcut)
            elif isinstance(old_block.shortcut, nn.Sequential):  # a projection reads the map, writes a new space
                _take(converted, prefix + "shortcut.0.weight", _sources(new_index), dim=1)
                new_index = torch.arange(old_block.last_bn.num_features)
            last = "3" if isinstance(old_block, Bottleneck) else "2"
            _take(converted, f"{prefix}conv{last}.weight", _sources(new_index), dim=0)
            for key in ("weight", "bias", "running_mean", "running_var"):
                _take(converted, f"{prefix}bn{last}.{key}", _sources(new_index), dim=0)
    _take(converted, "fc.weight", _sources(new_index), dim=1)
    return converted


def _through_zero_pad(new_index: torch.Tensor, old: ZeroPadShortcut, new: ZeroPadShortcut) -> torch.Tensor:
    """The channel map after a widening shortcut: the input's channels move with their own map and each layout's
    offset; the zero channels of one layout fill the zero places of the other, in order."""
    width = len(new_index) + old.extra_channels
    mapped = torch.empty(width, dtype=torch.long)
    carried = torch.arange(len(new_index)) + old.zeros_before
    mapped[carried] = new_index + new.zeros_before
    old_zeros = torch.ones(width, dtype=torch.bool)
    old_zeros[carried] = False
    new_zeros = torch.ones(width, dtype=torch.bool)
    new_zeros[new_index + new.zeros_before] = False
    mapped[old_zeros] = new_zeros.nonzero().flatten()
    return mapped


def _sources(new_index: torch.Tensor) -> torch.Tensor:
    """For each target channel, the source channel it comes from."""
    return torch.argsort(new_index)


def _take(weights: dict[str, torch.Tensor], key: str, sources: torch.Tensor, dim: int) -> None:
    weights[key] = weights[key].index_select(dim, sources)
