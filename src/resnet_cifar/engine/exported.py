"""A file written by ``resnet-cifar export`` (.onnx, OpenVINO .xml, .pt2) as a model for eval, predict and serve:
run by the runtime its kind needs, with the class names and preprocessing its metadata carries."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ResnetCifarError, first_line
from .export import FLOAT_INPUT, load_onnx, load_runner, require_module, session_runner
from .trained import TrainedModel, check_info

# File suffix -> the backend that runs it (a .pt2 program is PyTorch's own).
EXPORTED_RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino", ".pt2": "torch"}
# What a uint8-input file's description says its input is, by layout (export.input_description).
_PIXEL_INPUTS = {"uint8 NCHW, RGB 0-255": "nchw", "uint8 NHWC, RGB 0-255": "nhwc"}


class RuntimeModel(nn.Module):
    """A model run by a runtime, called like the PyTorch model: normalised float32 NCHW CPU tensors in, logits
    out. ``pixels`` (nchw or nhwc): the graph normalises itself and takes uint8 pixels in that layout; it is then
    fed with TrainedModel.batches' unnormalised values (``TrainedModel.takes_pixels``)."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], backend: str, pixels: str | None = None) -> None:
        super().__init__()
        self.run, self.backend, self.pixels = run, backend, pixels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float().cpu()
        if self.pixels:
            images = images.round().clamp(0, 255).to(torch.uint8)
            if self.pixels == "nhwc":
                images = images.permute(0, 2, 3, 1)
        return torch.from_numpy(np.asarray(self.run(images.contiguous().numpy())))


def is_exported(source: str | Path) -> bool:
    """Whether ``source`` names an exported file (by its suffix), rather than a run, model folder or checkpoint."""
    return Path(source).suffix.lower() in EXPORTED_RUNTIMES


def load_exported(path: Path, device: torch.device) -> TrainedModel:
    """The exported file at ``path`` as a ``TrainedModel`` with ``runtime`` set; exported files run on the CPU."""
    if device.type != "cpu":
        raise ResnetCifarError(f"{path} is an exported file and runs on the CPU: give --device cpu (or auto)")
    if not path.is_file():
        raise ResnetCifarError(f"no exported model at {path}")
    runtime = EXPORTED_RUNTIMES[path.suffix.lower()]
    loader = {"onnxruntime": _load_onnx, "openvino": _load_openvino, "torch": _load_pt2}[runtime]
    run, meta = loader(path)
    if meta.get("producer") != "resnet-cifar":
        raise ResnetCifarError(f"{path} carries no resnet-cifar metadata (class names, mean/std, input size): "
                               f"export the model with 'resnet-cifar export'")
    try:
        info: dict[str, Any] = {key: meta[key] if key == "model" else json.loads(meta[key])
                                for key in ("model", "class_names", "mean", "std", "input_size", "model_options")}
    except (KeyError, json.JSONDecodeError, TypeError) as error:
        raise ResnetCifarError(f"the metadata of {path} is damaged ({type(error).__name__}: "
                               f"{first_line(error)}): export the model again") from None
    info["num_classes"] = len(info["class_names"]) if isinstance(info["class_names"], list) else None
    check_info(info, str(path))
    input_kind = meta.get("input", FLOAT_INPUT)
    if input_kind != FLOAT_INPUT and input_kind not in _PIXEL_INPUTS:
        raise ResnetCifarError(f"{path} takes {input_kind!r} as input, which this version cannot feed: upgrade "
                               f"resnet-cifar")
    info["exported"] = {"file": str(path), "runtime": runtime, "input": input_kind}
    return TrainedModel(RuntimeModel(run, runtime, _PIXEL_INPUTS.get(input_kind)), info, runtime=runtime)


def _load_onnx(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    session = load_onnx(path)  # one session: it runs the model and holds the metadata
    return session_runner(session), dict(session.get_modelmeta().custom_metadata_map)


def _load_openvino(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    run = load_runner("openvino", path)
    model = require_module("openvino", "openvino").Core().read_model(str(path))  # the compiled model drops rt_info
    meta = {}
    for key in ("producer", "model", "class_names", "mean", "std", "input_size", "input", "model_options"):
        if model.has_rt_info(["resnet_cifar", key]):
            meta[key] = model.get_rt_info(["resnet_cifar", key]).astype(str)
    return run, meta


def _load_pt2(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    sidecar = path.with_suffix(".json")
    try:
        described = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResnetCifarError(f"{sidecar} (the description of {path.name}) is missing or unreadable "
                               f"({first_line(error)})") from None
    if not isinstance(described, dict):
        raise ResnetCifarError(f"{sidecar} is not a resnet-cifar model description")
    meta = {key: value if isinstance(value, str) else json.dumps(value) for key, value in described.items()}
    return load_runner("pt2", path), meta
