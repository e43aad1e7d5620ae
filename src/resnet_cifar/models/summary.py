"""Inspection: parameter counts, the torchinfo per-layer table, and the tensor shape after each stage."""
from __future__ import annotations

import re

import torch
from torch import nn
from torchinfo import ModelStatistics, summary
from torchinfo.enums import Units

from ..errors import ResnetCifarError
from .features import feature_outputs
from .registry import create_model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) in ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_parameters_of(name: str, num_classes: int = 10, **options: object) -> int:
    """Parameters of model ``name`` built on the meta device: shapes only, no memory, no initialisation cost."""
    with torch.device("meta"):
        return count_parameters(create_model(name, num_classes=num_classes, **options))


def require_input_size(name: str, image_size: int, **options: object) -> None:
    """Refuse an image side model ``name`` cannot take (LeNet-5's and VGG's heads need 32), found by one forward
    pass on the meta device: shapes only, no memory."""
    with torch.device("meta"):
        model = create_model(name, **options)
        try:
            model(torch.zeros(1, 3, image_size, image_size))
        except RuntimeError:
            raise ResnetCifarError(f"{name} does not take {image_size}x{image_size} images: give another "
                                   f"--image-size (CIFAR's 32 fits every model) or another model") from None


def stage_shapes(model: nn.Module, input_size: tuple[int, int, int]) -> list[tuple[str, tuple[int, ...]]]:
    """Shapes ``(name, (1, C, H, W))`` at each feature map the model declares in ``feature_info`` (for a ResNet:
    after the stem and after each stage), then ``("logits", (1, classes))``, for one input."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        outputs, logits = feature_outputs(model, torch.zeros(1, *input_size, device=device))
    except RuntimeError as error:
        raise ResnetCifarError(f"input size {input_size} does not fit this model: {error}") from None
    return [(name, tuple(out.shape)) for name, out in outputs] + [("logits", tuple(logits.shape))]


def layer_table(model: nn.Module, input_size: tuple[int, int, int], depth: int = 3) -> ModelStatistics:
    """torchinfo's per-layer table (output shapes, parameters, multiply-accumulates) for a batch of one."""
    return summary(model, input_size=(1, *input_size), depth=depth, verbose=0, device="cpu",
                   col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))


def summary_text(model: nn.Module, input_size: tuple[int, int, int], depth: int = 3) -> str:
    """The per-layer table followed by the shape after the stem and each stage, ready to print."""
    shapes = stage_shapes(model, input_size)
    # torchinfo 1.8 prints its unit enum as "(Units.MEGABYTES)" on Python >= 3.11; show its value instead.
    table = re.sub(r"\(Units\.(\w+)\)", lambda m: f"({Units[m.group(1)].value})", str(layer_table(model, input_size, depth)))
    lines = [table, "Shape after each stage (batch of 1):"]
    lines += [f"  {name:<8} {' x '.join(map(str, shape))}" for name, shape in shapes]
    return "\n".join(lines)
