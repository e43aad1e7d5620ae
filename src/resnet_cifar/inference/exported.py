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

from ..core.saved_model import check_info
from ..core.source import ModelSource
from ..errors import ResnetCifarError, first_line
from ..files import file_sha256
from .checksums import ARCHIVE_SHA256, WEIGHTS_SHA256, check_recorded, onnx_weights_sha256
from .pt2_archive import sidecar_path
from .runtimes import FLOAT_INPUT, load_onnx, load_runner, require_module, session_runner
from .trained import TrainedModel

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


def load_exported(source: ModelSource, device: torch.device) -> TrainedModel:
    """The exported file ``source`` as a ``TrainedModel`` with ``runtime`` set; exported files run on the CPU."""
    path = source.path
    if device.type != "cpu":
        raise ResnetCifarError(f"{path} is an exported file and runs on the CPU: give --device cpu (or auto)")
    if not path.is_file():
        raise ResnetCifarError(f"no exported model at {path}")
    runtime = source.runtime
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
    try:  # the logits are divided by it before the softmax; files exported before calibration existed lack it
        info["temperature"] = json.loads(meta.get("temperature", "1.0"))
    except json.JSONDecodeError:
        raise ResnetCifarError(f"the metadata of {path} is damaged (temperature): export the model again") from None
    check_info(info, str(path))
    input_kind = meta.get("input", FLOAT_INPUT)
    if input_kind != FLOAT_INPUT and input_kind not in _PIXEL_INPUTS:
        raise ResnetCifarError(f"{path} takes {input_kind!r} as input, which this version cannot feed: upgrade "
                               f"resnet-cifar")
    info["exported"] = {"file": str(path), "runtime": runtime, "input": input_kind}
    model = RuntimeModel(run, runtime, _PIXEL_INPUTS.get(input_kind))
    _check_answers_fit(path, model, info)
    return TrainedModel(model, info, runtime=runtime, source=source)


def _check_answers_fit(path: Path, model: RuntimeModel, info: dict[str, Any]) -> None:
    """One image of the metadata's input size through the model: it must take it and answer one score per class
    named, or every request would fail (or be mislabelled) later."""
    try:
        with torch.no_grad():
            logits = model(torch.zeros(1, *info["input_size"]))
    except Exception as error:  # noqa: BLE001  each runtime raises its own errors
        raise ResnetCifarError(f"{path} does not take an image of the input size its metadata gives "
                               f"{info['input_size']} ({first_line(error)[:200]}): export the model again") from None
    if tuple(logits.shape) != (1, info["num_classes"]):
        raise ResnetCifarError(f"the metadata of {path} names {info['num_classes']} classes, but the model answers "
                               f"{tuple(logits.shape[1:])} scores per image: export the model again")


def _load_onnx(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    _check_onnx_weights(path)
    session = load_onnx(path)  # one session: it runs the model and holds the metadata
    return session_runner(session), dict(session.get_modelmeta().custom_metadata_map)


def _check_onnx_weights(path: Path) -> None:
    """Refuse an ONNX file whose weights live in other files (a reference can name any file on the machine) or
    whose graph differs from the checksum recorded at export."""
    onnx = require_module("onnx", "onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001  protobuf and onnx raise several types
        raise ResnetCifarError(f"{path} is not a loadable ONNX model ({first_line(error)})") from None
    tensors = list(proto.graph.initializer)
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in tensors):
        raise ResnetCifarError(f"{path} keeps its weights in other files, which resnet-cifar does not read: export "
                               f"the model again")
    recorded = {entry.key: entry.value for entry in proto.metadata_props}.get(WEIGHTS_SHA256)
    check_recorded(path, "its graph and weights", recorded, onnx_weights_sha256(proto.graph))


def _load_openvino(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    run = load_runner("openvino", path)
    model = require_module("openvino", "openvino").Core().read_model(str(path))  # the compiled model drops rt_info
    meta = {}
    for key in ("producer", "model", "class_names", "mean", "std", "input_size", "input", "model_options",
                "temperature"):
        if model.has_rt_info(["resnet_cifar", key]):
            meta[key] = model.get_rt_info(["resnet_cifar", key]).astype(str)
    return run, meta


def _load_pt2(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    sidecar = sidecar_path(path)
    if not sidecar.is_file() and path.with_suffix(".json").is_file():
        sidecar = path.with_suffix(".json")  # where earlier exports wrote it (over a run's model.json)
    try:
        described = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResnetCifarError(f"{sidecar} (the description of {path.name}) is missing or unreadable "
                               f"({first_line(error)})") from None
    if not isinstance(described, dict) or described.get("producer") != "resnet-cifar":
        raise ResnetCifarError(f"{sidecar} is not a resnet-cifar model description")
    check_recorded(path, "the archive", described.get(ARCHIVE_SHA256), file_sha256(path))
    meta = {key: value if isinstance(value, str) else json.dumps(value) for key, value in described.items()}
    return load_runner("pt2", path), meta
