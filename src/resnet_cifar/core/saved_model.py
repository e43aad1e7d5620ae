"""A saved PyTorch model: its description (``model.json``, the ``model_info`` of a checkpoint) checked, and its
network rebuilt from the saved files. Loading for use (``inference``) and fine-tuning (``training``) both start here."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ResnetCifarError
from ..models import create_model
from .checkpoint import read_model_files


def rebuild_model(path: Path, *, without_temperature: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The network saved in a run folder, a ``model.safetensors`` (its ``model.json`` beside it) or a ``.pt``
    checkpoint, on the CPU in eval mode, and its description; refused with one line when the description is broken,
    the weights do not fit it or hold NaN or infinite values. ``without_temperature`` leaves out the fitted
    temperature (and its report), as ``calibrate`` does, which replaces it, broken or not."""
    weights, info = read_model_files(path)
    if without_temperature:
        info = {key: value for key, value in info.items() if key not in ("temperature", "calibration")}
    check_info(info, str(path))
    model = create_model(info["model"], num_classes=info["num_classes"], **info.get("model_options", {}))
    _check_compatible(model.state_dict(), weights, str(path), info["model"])
    broken = nonfinite_weights(weights)
    if broken:
        raise ResnetCifarError(f"the weights in {path} hold NaN or infinite values ({broken}): the run that made "
                               f"them diverged")
    model.load_state_dict(weights)
    return model.eval(), info


def model_info(name: str, options: dict[str, Any], class_names: list[str], input_size: tuple[int, int, int],
               mean: list[float], std: list[float], **extra: Any) -> dict[str, Any]:
    """The description saved beside the weights, enough to rebuild the model and preprocess its inputs."""
    return {"model": name, "model_options": options, "num_classes": len(class_names), "class_names": class_names,
            "input_size": list(input_size), "mean": mean, "std": std, **extra}


def nonfinite_weights(weights: dict[str, torch.Tensor]) -> str:
    """The names of the weights holding NaN or infinite values, the first three, for a message ('' if none)."""
    broken = [key for key, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    return f"{', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}"


# Bounds on the sizes a model description may give, checked before anything of that size is allocated.
MAX_CLASSES = 100_000
MAX_CHANNELS = 16
MAX_SIDE = 1024
# Temperatures (temperature scaling) a description may carry: far outside them a model is broken, not calibrated.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0


def check_info(info: Any, source: str) -> None:
    """Refuse a model description that would fail later, deep inside PyTorch, or mislabel every answer."""
    missing = [k for k in ("model", "num_classes", "class_names", "input_size", "mean", "std") if k not in info]
    if missing:
        raise ResnetCifarError(f"the model description of {source} lacks {', '.join(missing)}")
    problems = []
    classes = info["num_classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        problems.append(f"num_classes {classes!r} is not a positive integer")
    names = info["class_names"]
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names) and len(names) == classes):
        problems.append(f"class_names must be {classes!r} names (one per class)")
    elif classes > MAX_CLASSES:
        problems.append(f"num_classes {classes} is more than the {MAX_CLASSES:,} a model may have")
    size = info["input_size"]
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(d, int) and d > 0 for d in size)):
        problems.append(f"input_size {size!r} is not [channels, height, width]")
    elif size[0] > MAX_CHANNELS or max(size[1:]) > MAX_SIDE:
        problems.append(f"input_size {size} is larger than [{MAX_CHANNELS}, {MAX_SIDE}, {MAX_SIDE}], which any "
                        f"image model here takes")
    for key in ("mean", "std"):
        values = info[key]
        if not (isinstance(values, list) and values and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                            for v in values)):
            problems.append(f"{key} {values!r} is not a list of numbers")
        elif key == "std" and min(values) <= 0:
            problems.append(f"std {values!r} must be above 0 (inputs are divided by it)")
    temperature = info.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):  # NaN fails both comparisons
        problems.append(f"temperature {temperature!r} is not a number from {MIN_TEMPERATURE:g} to "
                        f"{MAX_TEMPERATURE:g} (fit it again with resnet-cifar calibrate, which replaces it)")
    if problems:
        raise ResnetCifarError(f"the model description of {source} is broken: {'; '.join(problems)}")


def mismatched_keys(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor],
                    ) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of ``found`` weights against a model's ``expected`` state dict."""
    return ([k for k in expected if k not in found], [k for k in found if k not in expected],
            [k for k, v in expected.items() if k in found and found[k].shape != v.shape])


def _check_compatible(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str,
                      name: str) -> None:
    missing, unexpected, shaped = mismatched_keys(expected, found)
    problems = [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected]
    problems += [f"{k} has shape {tuple(found[k].shape)}, {name} needs {tuple(expected[k].shape)}" for k in shaped]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ResnetCifarError(f"the weights in {source} do not fit {name}: {'; '.join(problems[:3])}{more}")
