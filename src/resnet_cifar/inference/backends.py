"""Inference backends for ``eval``, ``predict`` and ``serve``: PyTorch itself, or the model exported and run by ONNX
Runtime or OpenVINO on the CPU (``--backend``), in float32 or int8. Float32 results agree within rounding whichever
runs."""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.batches import EVAL_BATCH_SIZE
from ..core.device import resolve_device
from ..core.source import ModelSource, resolve_source
from ..errors import ResnetCifarError
from ..log import notice
from ..models.fold import fold_batchnorm
from .export import SUFFIXES, Int8Images, export
from .exported import RuntimeModel
from .loading import load_trained_model
from .runtimes import load_runner
from .trained import TrainedModel

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
# Runtime -> the export format it runs and the Python module it needs.
_RUNTIMES = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
# auto on a CPU, in this order where installed: measured fastest first (BENCHMARKS.md, "Inference backends"), on
# CPUs with native bf16 and without.
AUTO_ORDER = ("openvino", "onnxruntime")
# int8 backends: OpenVINO quantises with NNCF (auto's choice: as fast as torchao or faster for ResNet-18/56 on both
# CPU kinds measured, and nearer float32's accuracy), ONNX Runtime with its static quantisation, PyTorch with torchao.
INT8_BACKENDS = ("openvino", "onnxruntime", "torch")


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


def load_for_backend(model: TrainedModel | ModelSource | str | Path, backend: str | None, device: str = "auto", *,
                     int8: bool = False) -> TrainedModel:
    """``model`` as it is when already loaded, else its source loaded where ``backend`` runs it: on the CPU for a
    runtime, an exported file or int8 when no device is given (``auto``), else on ``device``."""
    if isinstance(model, TrainedModel):
        return model
    source = resolve_source(model)
    on_cpu = (int8 or backend not in (None, "torch", "auto") or source.is_exported) and device == "auto"
    return load_trained_model(source, resolve_device("cpu" if on_cpu else device))


def answering_model(trained: TrainedModel, backend: str) -> nn.Module:
    """What answers requests for images (predict, serve): for PyTorch the model with BatchNorm folded into the
    convolutions (the same outputs up to rounding, fewer passes), else ``runnable``'s."""
    if backend == "torch" and trained.runtime is None:
        return fold_batchnorm(trained.model)
    return runnable(trained, backend)


def choose_backend(trained: TrainedModel, name: str | None, *, int8: bool = False) -> str:
    """The backend that runs ``trained`` for ``--backend name``: an exported file's own runtime; with ``int8``,
    OpenVINO (NNCF) or PyTorch (torchao), ``auto`` (and ``None``) taking OpenVINO where it and NNCF are installed.
    ``None``, the default of one-shot commands: PyTorch, or an exported file's runtime (exporting on the fly takes
    2-6 s, more than a runtime saves on a few thousand images of a small net: BENCHMARKS.md, "Inference
    backends")."""
    if name is None:
        name = trained.runtime or ("auto" if int8 else "torch")  # int8 costs a quantisation whichever runs it
    if trained.runtime is not None:
        source = trained.info["exported"]["file"]
        if name not in ("auto", trained.runtime):
            raise ResnetCifarError(f"{source} is run by {trained.runtime}: give --backend {trained.runtime} or auto "
                                   f"(or export the model for {name})")
        if int8:
            raise ResnetCifarError(f"{source} is run as it was exported: for int8, export with --format openvino "
                                   f"--int8, or give --int8 with the run or model folder")
        return trained.runtime
    if not int8:
        return _said(name, resolve_backend(name, trained.device))
    if trained.device.type != "cpu":
        raise ResnetCifarError("int8 inference runs on the CPU only: use --device cpu")
    asked = name
    if name == "auto":
        name = "openvino" if installed("openvino") and installed("nncf") else "torch"
    if name not in INT8_BACKENDS:
        raise ResnetCifarError(f"--int8 runs with --backend openvino (NNCF), onnxruntime or torch (torchao), not "
                               f"{name}")
    if name == "openvino" and not installed("nncf"):
        raise ResnetCifarError("--int8 with --backend openvino needs nncf: pip install 'resnet-cifar[openvino]'")
    return _said(asked, resolve_backend(name, trained.device))


def _said(asked: str, chosen: str) -> str:
    """``chosen``, told as a notice when ``auto`` chose it."""
    if asked == "auto":
        notice(f"--backend auto: the model runs with {chosen}")
    return chosen


def runnable(trained: TrainedModel, backend: str, int8_calibration: np.ndarray | None = None) -> nn.Module:
    """``trained``'s model for ``backend``: itself for PyTorch (or an exported file), else exported (verified) and
    loaded by the runtime. With ``int8_calibration`` (preprocessed images), quantised to int8 on them: by torchao
    for PyTorch, by NNCF for OpenVINO, by its own static quantisation for ONNX Runtime."""
    if trained.runtime is not None:
        return trained.model
    if backend == "torch":
        if int8_calibration is None:
            return trained.model
        from .int8 import quantize_int8  # torchao is optional

        calibration = torch.from_numpy(int8_calibration).split(EVAL_BATCH_SIZE)
        return quantize_int8(trained.model, calibration, chunk=EVAL_BATCH_SIZE)
    format_name = _RUNTIMES[backend][0]
    int8 = Int8Images(int8_calibration) if int8_calibration is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        path = export(trained, format_name, Path(scratch) / f"model{SUFFIXES[format_name]}", int8=int8).path
        return RuntimeModel(load_runner(format_name, path), backend)
