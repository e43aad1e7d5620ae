"""Inference backends for ``eval`` and ``predict``: PyTorch itself, or the model exported and run by ONNX Runtime or
OpenVINO on the CPU (``--backend``). Results agree within float32 rounding whichever runs."""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ResnetCifarError
from .export import export, load_onnx, load_openvino
from .trained import TrainedModel

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
# Runtime -> the export format it runs and the Python module it needs.
_RUNTIMES = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
# auto on a CPU, in this order where installed: measured fastest first (BENCHMARKS.md, "Inference backends").
AUTO_ORDER = ("openvino", "onnxruntime")


class RuntimeModel(nn.Module):
    """An exported model run by a runtime, called like the PyTorch model (float32 CPU tensors in and out)."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], backend: str) -> None:
        super().__init__()
        self.run, self.backend = run, backend

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.run(images.float().contiguous().cpu().numpy())))


def installed(backend: str) -> bool:
    """Whether ``backend`` (or an optional module such as ``nncf``) can be found here."""
    module = _RUNTIMES[backend][1] if backend in _RUNTIMES else backend
    return backend == "torch" or importlib.util.find_spec(module) is not None


def resolve_backend(name: str, device: torch.device) -> str:
    """The backend ``name`` stands for on ``device``: ``auto`` is PyTorch off the CPU, else the first installed of
    ``AUTO_ORDER``, else PyTorch; a runtime asked for by name must be installed and the device a CPU."""
    if name not in BACKENDS:
        raise ResnetCifarError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        if device.type != "cpu":
            return "torch"
        return next((backend for backend in AUTO_ORDER if installed(backend)), "torch")
    if name != "torch" and device.type != "cpu":
        raise ResnetCifarError(f"--backend {name} runs on the CPU: use --device cpu, or --backend torch")
    if not installed(name):
        extra = _RUNTIMES[name][0]
        raise ResnetCifarError(f"--backend {name} needs {name}: pip install 'resnet-cifar[{extra}]'")
    return name


def runnable(trained: TrainedModel, backend: str, int8_calibration: np.ndarray | None = None) -> nn.Module:
    """``trained``'s model for ``backend``: itself for PyTorch, else exported (verified) and loaded by the runtime;
    with ``int8_calibration`` (preprocessed images), OpenVINO runs it quantised by NNCF."""
    if backend == "torch":
        return trained.model
    format_name = _RUNTIMES[backend][0]
    int8 = (int8_calibration, int8_calibration[:1]) if int8_calibration is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        name = f"model{'.onnx' if format_name == 'onnx' else '.xml'}"
        path = export(trained, format_name, Path(scratch) / name, int8=int8).path
        if backend == "onnxruntime":
            session = load_onnx(path)
            name = session.get_inputs()[0].name
            return RuntimeModel(lambda images: session.run(None, {name: images})[0], backend)
        compiled = load_openvino(path)
        return RuntimeModel(lambda images: compiled(images)[0], backend)
