"""``explain``'s files: for each image, a figure (the image, the map and the overlay for each explained class)
and the maps' numbers in ``explain.json``; with ``feature_maps`` the activations after every stage for the first
image; with ``filters`` the first convolution's kernels."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..core.source import ModelSource
from ..errors import ResnetCifarError, is_decimal
from ..files import atomic_write_json
from ..models.features import feature_outputs
from ..plots import plot_explanation, plot_feature_maps, plot_filters
from .backends import load_for_backend
from .explain import Explanation, explain, feature_layers
from .predict import URL_TIMEOUT_S, check_timeout, expand_inputs, input_file_names, load_input
from .trained import TrainedModel

FEATURE_CHANNELS = 8  # channels shown per stage, those with the highest mean activation


def explain_inputs(model: TrainedModel | ModelSource | str | Path, inputs: Sequence[str], *, method: str = "gradcam",
                   layer: str | None = None, target: str = "top", top_k: int = 1, out_dir: str | Path | None = None,
                   device: str = "auto", timeout: float = URL_TIMEOUT_S, feature_maps: bool = False,
                   filters: bool = False) -> dict[str, Any]:
    """Explain each input (image files, folders, http(s) URLs) and write the figures and ``explain.json`` to
    ``out_dir`` (default: ``explain/`` in the model's folder, ``./explain-NAME`` for shipped weights); returns what
    ``explain.json`` holds."""
    check_timeout(timeout)
    trained = pytorch_model(model, device)
    items = expand_inputs(inputs)
    if not items:
        raise ResnetCifarError("no input given: pass image files, folders or http(s) URLs")
    pixels = torch.stack([load_input(item, trained.input_size[1:], timeout) for item in items])
    images = trained.normalised(pixels)
    targets = target_classes(target, trained.class_names, len(items))
    explanation = explain(trained.model, images, method=method, layer=layer, targets=targets, top_k=top_k,
                          temperature=trained.temperature)
    out = Path(out_dir) if out_dir is not None else _default_out(trained)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, (item, name) in enumerate(zip(items, input_file_names(items))):
        results.append(_report_one(item, index, explanation, pixels[index], trained.class_names, out / f"{name}.png"))
    report = {"method": method, "layer": explanation.layer, "images": results}
    atomic_write_json(out / "explain.json", report)
    if feature_maps:
        plot_feature_maps(pixels[0], stage_activations(trained.model, images[:1]), out / "feature-maps.png")
    if filters:
        kernels = first_convolution(trained.model).weight.detach().float().cpu()
        plot_filters(kernels, out / "filters.png", heading=f"first convolution: {len(kernels)} kernels of "
                     f"{kernels.shape[1]}x{kernels.shape[2]}x{kernels.shape[3]}")
    return {**report, "out_dir": str(out)}


def pytorch_model(model: TrainedModel | ModelSource | str | Path, device: str = "auto") -> TrainedModel:
    """``model`` loaded for PyTorch; an exported file (no gradients to take) is refused in one line."""
    trained = load_for_backend(model, "torch", device)
    trained.require_gradients("explanations need a PyTorch model")
    return trained


def target_classes(target: str, class_names: list[str], count: int) -> torch.Tensor | None:
    """``--target``: ``top`` (None: the most probable classes), a class name or a class number, for every image."""
    if target == "top":
        return None
    if target in class_names:
        index = class_names.index(target)
    elif is_decimal(target) and int(target) < len(class_names):
        index = int(target)
    else:
        shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
        raise ResnetCifarError(f"--target {target!r} is not a class of this model: give top, a class name "
                               f"({shown}) or a number 0..{len(class_names) - 1}")
    return torch.full((count, 1), index, dtype=torch.long)


def stage_activations(model: nn.Module, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The output of every feature layer for one normalised image: its ``FEATURE_CHANNELS`` channels with the
    highest mean activation, strongest first."""
    feature_layers(model)  # a model without feature maps is refused in words
    outputs, _ = feature_outputs(model, image)
    return [(name, maps[maps.mean((1, 2)).argsort(descending=True)[:FEATURE_CHANNELS]])
            for name, maps in ((name, out[0].float().cpu()) for name, out in outputs)]


def first_convolution(model: nn.Module) -> nn.Conv2d:
    convolution = next((module for module in model.modules() if isinstance(module, nn.Conv2d)), None)
    if convolution is None:
        raise ResnetCifarError(f"{type(model).__name__} has no convolution whose filters could be drawn")
    return convolution


def _default_out(trained: TrainedModel) -> Path:
    if trained.source is None:
        raise ResnetCifarError("give out_dir: this model was not loaded from a folder or file")
    return trained.source.subfolder("explain")


def _report_one(item: str, index: int, explanation: Explanation, pixels: torch.Tensor, class_names: list[str],
                figure: Path) -> dict[str, Any]:
    classes = explanation.classes[index].tolist()
    probabilities = explanation.probabilities[index].tolist()
    titles = [f"{class_names[c]} {100 * p:.1f}%" for c, p in zip(classes, probabilities)]
    plot_explanation(pixels, explanation.maps[index], titles, figure, heading=f"{item} ({explanation.method}"
                     f"{', ' + explanation.layer if explanation.layer else ''})")
    return {"input": item, "figure": str(figure),
            "classes": [{"class": class_names[c], "probability": p, "map": explanation.maps[index, k].round(
                decimals=4).tolist()} for k, (c, p) in enumerate(zip(classes, probabilities))]}
