"""``explain``'s files: for each image, a figure (the image, the map and the overlay for each explained class)
and the maps' numbers in ``explain.json``; with ``feature_maps`` the activations after every stage for the first
image; with ``filters`` the first convolution's kernels."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..core.source import ModelSource
from ..core.termination import terminate_as_interrupt
from ..errors import ResnetCifarError
from ..models.features import feature_outputs
from ..plots import plot_explanation, plot_feature_maps, plot_filters
from .backends import load_for_backend
from .explain import EXPLAIN_BATCH, Explanation, chosen_layer, explain, feature_layers, target_classes
from .figure_files import figure_paths
from .predict import URL_TIMEOUT_S, check_timeout, expand_inputs, load_input
from .trained import TrainedModel

FEATURE_CHANNELS = 8  # channels shown per stage, those with the highest mean activation
OTHER_FIGURES = ("feature-maps", "filters")  # names an image's figure never takes


def explain_inputs(model: TrainedModel | ModelSource | str | Path, inputs: Sequence[str], *, method: str = "gradcam",
                   layer: str | None = None, target: str = "top", top_k: int = 1, out_dir: str | Path | None = None,
                   device: str = "auto", timeout: float = URL_TIMEOUT_S, feature_maps: bool = False,
                   filters: bool = False) -> dict[str, Any]:
    """Explain each input (image files, folders, http(s) URLs) and write the figures and ``explain.json`` to
    ``out_dir`` (default: ``explain/`` in the model's folder, ``./explain-NAME`` for shipped weights); returns what
    ``explain.json`` holds, less the maps' numbers (they stay in the file).

    Images are decoded and explained ``EXPLAIN_BATCH`` at a time, so memory does not grow with their number. A
    run stopped part-way (Ctrl-C, SIGTERM) still writes ``explain.json`` for the images finished, marked stopped."""
    check_timeout(timeout)
    trained = pytorch_model(model, device)
    items = expand_inputs(inputs)
    if not items:
        raise ResnetCifarError("no input given: pass image files, folders or http(s) URLs")
    layer = chosen_layer(trained.model, method, layer, trained.input_size)
    targets = target_classes(target, trained.class_names, 1)
    out = Path(out_dir) if out_dir is not None else _default_out(trained)
    figures = figure_paths(out, items, reserved=OTHER_FIGURES)  # refuses a run folder before anything is written
    out.mkdir(parents=True, exist_ok=True)
    header = {"method": method, "layer": layer}
    summaries: list[dict[str, Any]] = []
    first_image: torch.Tensor | None = None
    with terminate_as_interrupt(), _StreamedIndex(out / "explain.json", header, len(items)) as index, \
            tqdm(total=len(items), unit="image", desc="explaining", disable=None if len(items) > EXPLAIN_BATCH
                 else True) as bar:
        for start in range(0, len(items), EXPLAIN_BATCH):
            batch = items[start:start + EXPLAIN_BATCH]
            pixels = torch.stack([load_input(item, trained.input_size[1:], timeout) for item in batch])
            first_image = pixels[0] if first_image is None else first_image
            chosen = None if targets is None else targets.expand(len(batch), 1)
            explanation = explain(trained.model, trained.normalised(pixels), method=method, layer=layer,
                                  targets=chosen, top_k=top_k, temperature=trained.temperature)
            for offset, item in enumerate(batch):
                entry = _report_one(item, offset, explanation, pixels[offset], trained.class_names,
                                    figures[start + offset])
                index.add(entry)
                summaries.append(_without_maps(entry))
                bar.update()
    if feature_maps:
        image = trained.normalised(first_image[None])
        plot_feature_maps(first_image, stage_activations(trained.model, image), out / "feature-maps.png")
    if filters:
        kernels = first_convolution(trained.model).weight.detach().float().cpu()
        plot_filters(kernels, out / "filters.png", heading=f"first convolution: {len(kernels)} kernels of "
                     f"{kernels.shape[1]}x{kernels.shape[2]}x{kernels.shape[3]}")
    return {**header, "images": summaries, "out_dir": str(out)}


class _StreamedIndex:
    """``explain.json`` written entry by entry into a temporary file beside it and renamed into place on leaving,
    so that its size in memory stays one entry. Left by an interruption (``KeyboardInterrupt``, which SIGTERM raises
    here too), it is still completed for the images finished, with ``stopped`` saying how many of how many; the
    interruption then goes on. Any other error leaves no index and no temporary file."""

    def __init__(self, path: Path, header: dict[str, Any], total: int) -> None:
        self.path, self.header, self.total = path, header, total
        self.count = 0
        self._file: BinaryIO | None = None
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def __enter__(self) -> _StreamedIndex:
        self._file = self._tmp.open("wb")
        self._write(json.dumps(self.header, indent=2)[:-2] + ',\n  "images": [')
        return self

    def add(self, entry: dict[str, Any]) -> None:
        self._write(("," if self.count else "") + "\n    " + json.dumps(entry))
        self.count += 1

    def _write(self, text: str) -> None:
        assert self._file is not None
        self._file.write(text.encode())

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        assert self._file is not None
        try:
            if kind is not None and not issubclass(kind, KeyboardInterrupt):
                return
            stopped = "" if kind is None else f',\n  "stopped": "after {self.count} of {self.total} images"'
            self._write(f"\n  ]{stopped}\n}}\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        finally:
            self._file.close()
            self._tmp.unlink(missing_ok=True)


def _without_maps(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "classes": [{k: v for k, v in c.items() if k != "map"} for c in entry["classes"]]}


def pytorch_model(model: TrainedModel | ModelSource | str | Path, device: str = "auto") -> TrainedModel:
    """``model`` loaded for PyTorch; an exported file (no gradients to take) is refused in one line."""
    trained = load_for_backend(model, "torch", device)
    trained.require_gradients("explanations need a PyTorch model")
    return trained


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
