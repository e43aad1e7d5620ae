"""A trained model together with what using it needs: class names, input size and normalisation."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..data import ImageSet
from ..data.loader import BatchLoader
from ..errors import ResnetCifarError
from ..log import notice
from ..models import create_model, model_spec
from .checkpoint import read_model_files
from .loop import EVAL_BATCH_SIZE


@dataclass
class TrainedModel:
    """A model in eval mode and the preprocessing it was trained with (from ``model.json``). ``runtime``: set for
    a file written by ``resnet-cifar export``, the backend that runs it (``model`` is then that runtime's)."""

    model: nn.Module
    info: dict[str, Any]
    runtime: str | None = None

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)  # a runtime's model has none and runs on the CPU
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def takes_pixels(self) -> bool:
        """Whether the model normalises its input itself (an export with its preprocessing included)."""
        return getattr(self.model, "pixels", None) is not None

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.info["input_size"])  # type: ignore[return-value]

    @property
    def mean(self) -> list[float]:
        return list(self.info["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.info["std"])

    def batches(self, data: ImageSet) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``data``, preprocessed as the model was trained, on the model's device, in order."""
        channels = self.input_size[0]
        # pixel values unchanged (x / 255 - 0) / (1 / 255) for a model that normalises them itself
        mean, std = ([0.0] * channels, [1 / 255] * channels) if self.takes_pixels else (self.mean, self.std)
        return BatchLoader(data, EVAL_BATCH_SIZE, device=self.device, mean=mean, std=std).epoch()

    def preprocessed(self, data: ImageSet) -> np.ndarray:
        """All of ``data`` preprocessed as the model was trained: float32 (N, C, H, W) on the CPU, for runtimes."""
        return torch.cat([images.float().cpu() for images, _ in self.batches(data)]).numpy()


def model_info(name: str, options: dict[str, Any], class_names: list[str], input_size: tuple[int, int, int],
               mean: list[float], std: list[float], **extra: Any) -> dict[str, Any]:
    """The description saved beside the weights, enough to rebuild the model and preprocess its inputs."""
    return {"model": name, "model_options": options, "num_classes": len(class_names), "class_names": class_names,
            "input_size": list(input_size), "mean": mean, "std": std, **extra}


def load_trained_model(source: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Rebuild the model saved in a run folder, a ``model.safetensors`` or a ``.pt`` checkpoint, or load a file
    written by ``resnet-cifar export`` (run by its runtime on the CPU)."""
    from .exported import (  # the runtimes are optional: imported when asked for
        is_exported,
        load_exported,
    )

    if is_exported(source):
        return load_exported(Path(source), torch.device(device))
    weights, info = read_model_files(Path(source))
    check_info(info, str(source))
    model = create_model(info["model"], num_classes=info["num_classes"], **info.get("model_options", {}))
    _check_compatible(model.state_dict(), weights, str(source), info["model"])
    broken = nonfinite_weights(weights)
    if broken:
        raise ResnetCifarError(f"the weights in {source} hold NaN or infinite values ({broken}): the run that made "
                               f"them diverged")
    model.load_state_dict(weights)
    return TrainedModel(model.to(device).eval(), info)


def nonfinite_weights(weights: dict[str, torch.Tensor]) -> str:
    """The names of the weights holding NaN or infinite values, the first three, for a message ('' if none)."""
    broken = [key for key, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    return f"{', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}"


def initialise_from(model: nn.Module, source: str | Path, name: str, options: dict[str, Any]) -> None:
    """Start ``model`` (model ``name`` with ``options``, as a run builds it) from the weights in ``source`` (a model
    folder, run folder or checkpoint): fine-tuning. Every weight must fit, except the classifier of a model trained
    for another number of classes, which starts new."""
    from .exported import refuse_exported  # exported.py builds on this module

    refuse_exported(source, "start training from")
    trained = load_trained_model(source)
    if trained.info["model"] != name:
        raise ResnetCifarError(f"{source} holds a {trained.info['model']}, this run trains {name}: give --model "
                               f"{trained.info['model']}")
    defaults = model_spec(name).options
    theirs = {**defaults, **trained.info.get("model_options", {})}
    ours = {**defaults, **options}
    differing = [key for key in ours if key != "zero_init_residual" and ours[key] != theirs.get(key)]
    if differing:
        saved = ", ".join(f"{key} {theirs.get(key)}" for key in differing)
        raise ResnetCifarError(f"{source} was trained with {saved}; this run has "
                               f"{', '.join(f'{key} {ours[key]}' for key in differing)}: give the same model options")
    weights = trained.model.state_dict()
    head = [module_name for module_name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    classes = model.get_submodule(head).out_features
    if classes != trained.info["num_classes"]:
        notice(f"{source} classifies {trained.info['num_classes']} classes, this run {classes}: its {head} layer "
               f"starts new, every other weight from {source}")
        weights = {key: value for key, value in weights.items() if not key.startswith(head + ".")}
        weights.update({key: value for key, value in model.state_dict().items() if key.startswith(head + ".")})
    model.load_state_dict(weights)


# Bounds on the sizes a model description may give, checked before anything of that size is allocated.
MAX_CLASSES = 100_000
MAX_CHANNELS = 16
MAX_SIDE = 1024


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
