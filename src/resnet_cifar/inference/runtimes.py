"""The runtimes that run exported files on the CPU (ONNX Runtime, OpenVINO, torch.export's loader), each file
loaded once as a function of images to logits; the exporter, which checks what it wrote, and the loaders of
exported files both use them."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ResnetCifarError, first_line
from ..files import file_sha256
from .checksums import check_recorded
from .pt2_archive import load_pt2_program

# What an exported graph takes when its metadata says nothing else: normalised float32 NCHW, as the model was
# trained (``export --include-preprocessing`` writes graphs that take uint8 pixels, described by their layout).
FLOAT_INPUT = "float32 NCHW, normalised"


def load_runner(format_name: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The exported file at ``path`` loaded once by its runtime: a function of images (NumPy) to logits."""
    if format_name == "onnx":
        return session_runner(load_onnx(path))
    if format_name == "openvino":
        compiled = load_openvino(path)
        return lambda images: compiled(images)[0]
    module = load_pt2_program(path)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).numpy()

    return run


def session_runner(session: Any) -> Callable[[np.ndarray], np.ndarray]:
    """An onnxruntime session as a function of images to logits."""
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def load_onnx(path: Path) -> Any:
    """An onnxruntime session of ``path`` on the CPU, with as many threads as PyTorch has (``--threads``); a
    damaged file is a one-line error."""
    ort = require_module("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001  onnxruntime raises its own exception types
        raise ResnetCifarError(f"{path} is not a loadable ONNX model ({first_line(error)})") from None


def load_openvino(path: Path, precision: str = "f32") -> Callable:
    """A compiled OpenVINO model of ``path`` on the CPU in ``precision`` (f32, or bf16 where the CPU has it), with
    as many threads as PyTorch has (``--threads``). The .xml and .bin are checked first (present, XML, the .bin's
    recorded checksum); what OpenVINO still refuses is named in one line."""
    ov = require_module("openvino", "openvino")
    _check_openvino_files(path)
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    try:
        return core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as error:  # noqa: BLE001  OpenVINO raises RuntimeError with C++ messages
        reason = openvino_reason(error)
        if "weights" in reason.lower():
            reason = f"its weights {path.with_suffix('.bin').name} are truncated or belong to another model: {reason}"
        elif any(word in reason.lower() for word in ("parsing", "tag", "offset")):
            reason = f"the .xml is truncated or not valid XML: {reason}"
        raise ResnetCifarError(f"{path} is not a loadable OpenVINO model ({reason})") from None


def _check_openvino_files(path: Path) -> None:
    """Refuse an IR whose .xml is empty or not XML (OpenVINO would try every other framework's reader on it), whose
    .bin is missing, or whose .bin differs from the checksum recorded at export."""
    weights = path.with_suffix(".bin")
    try:
        with path.open("rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head:
            raise ResnetCifarError(f"{path} is empty: export the model again")
        if not head.startswith(b"<"):
            raise ResnetCifarError(f"{path} is not an OpenVINO IR (its .xml is not XML)")
        if not weights.is_file():
            raise ResnetCifarError(f"{weights.name}, the weights of {path.name}, is missing: keep the .bin beside "
                                   f"the .xml")
        recorded = re.search(rb'<weights_sha256 value="([0-9a-f]{64})"', path.read_bytes())
        check_recorded(path, weights.name, recorded.group(1).decode() if recorded else None, file_sha256(weights))
    except OSError as error:
        raise ResnetCifarError(f"cannot read {error.filename or path} ({error.strerror or error})") from None


def openvino_reason(error: BaseException) -> str:
    """The lines of an OpenVINO error that say what went wrong, without its source locations."""
    lines = [line.strip() for line in str(error).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    return "; ".join(useful)[:300] or first_line(error)


def require_module(module: str, extra: str) -> Any:
    """Import an optional runtime; any failure is the one-line error that names the extra to install."""
    try:
        return __import__(module)
    except Exception as error:  # noqa: BLE001  a broken install fails in many ways; each means "not available"
        raise ResnetCifarError(f"this format needs {module}: pip install 'resnet-cifar[{extra}]' "
                               f"({type(error).__name__}: {first_line(error)})") from None


def input_description(layout: str | None) -> str:
    """The ``input`` metadata entry: what the graph's input holds."""
    return FLOAT_INPUT if layout is None else f"uint8 {layout.upper()}, RGB 0-255"
