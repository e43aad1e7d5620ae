"""``resnet-cifar export``: a trained model as an ONNX file, an OpenVINO IR or a ``torch.export`` program, with its
preprocessing in the file's metadata, verified against PyTorch before it is called done.

Each format is written with its framework's own exporter (``torch.onnx.export``, ``openvino.convert_model``,
``torch.export``); the runtimes are optional extras (``onnx``, ``openvino``), imported only here.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..data import load_dataset
from ..data.class_names import CIFAR10_CLASSES
from ..errors import ResnetCifarError, first_line
from ..files import fsync_folder
from .checksums import ARCHIVE_SHA256, WEIGHTS_SHA256, check_recorded, file_sha256, onnx_weights_sha256
from .pt2_archive import load_pt2_program, sidecar_path
from .trained import TrainedModel

FORMATS = ("onnx", "openvino", "pt2")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "pt2": ".pt2"}
EXTRAS = {"onnx": "onnx", "openvino": "openvino"}
INT8_FORMATS = ("openvino", "onnx")
ONNX_OPSET = 18
# Largest logit difference allowed, relative to the largest logit (at least 1): float32 runtimes add and multiply
# in other orders than PyTorch, and deep nets carry the rounding through.
TOLERANCE = 1e-4
VERIFY_BATCH = 8
INT8_CALIBRATION_IMAGES = 1000
# What the exported graph takes: normalised float32 NCHW (as the model was trained), or with
# ``--include-preprocessing`` raw uint8 RGB pixels in either layout, normalised inside the graph.
INPUT_LAYOUTS = ("nchw", "nhwc")
FLOAT_INPUT = "float32 NCHW, normalised"
TEXT_METADATA = ("model", "input", "producer")  # the other entries are JSON


class WithPreprocessing(nn.Module):
    """``model`` behind its own normalisation: uint8 RGB pixels (N, C, H, W) or (N, H, W, C) in, logits out."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], layout: str) -> None:
        super().__init__()
        if layout not in INPUT_LAYOUTS:
            raise ResnetCifarError(f"unknown input layout {layout!r}: choose one of {', '.join(INPUT_LAYOUTS)}")
        self.model, self.layout = model, layout
        std_t = torch.tensor(std).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add, as the training loader computes it
        self.register_buffer("gain", 1.0 / (255.0 * std_t))
        self.register_buffer("offset", -torch.tensor(mean).view(1, -1, 1, 1) / std_t)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.float()
        if self.layout == "nhwc":
            images = images.permute(0, 3, 1, 2)
        return self.model(images * self.gain + self.offset)


def input_description(layout: str | None) -> str:
    """The ``input`` metadata entry: what the graph's input holds."""
    return FLOAT_INPUT if layout is None else f"uint8 {layout.upper()}, RGB 0-255"


@dataclass
class Exported:
    """What ``export`` wrote and how the check went (``agreement``: int8 exports, top-1 agreement with float32)."""

    path: Path
    format: str
    max_difference: float
    scale: float
    agreement: float | None = None
    accuracies: tuple[float, float] | None = None  # int8 exports: (float32, int8) top-1 on the check images


@dataclass
class Int8Images:
    """Preprocessed float32 NCHW images for an int8 export: to calibrate on, and labelled ones to check with."""

    calibration: np.ndarray
    check: np.ndarray | None = None
    check_labels: np.ndarray | None = None


def metadata(trained: TrainedModel, layout: str | None = None) -> dict[str, str]:
    """What the file carries so that it alone classifies an image: strings, as ONNX and OpenVINO store them."""
    info = trained.info
    return {"model": info["model"], "class_names": json.dumps(trained.class_names), "mean": json.dumps(trained.mean),
            "std": json.dumps(trained.std), "input_size": json.dumps(list(trained.input_size)),
            "input": input_description(layout), "model_options": json.dumps(info.get("model_options", {})),
            "producer": "resnet-cifar"}


def export(trained: TrainedModel, format_name: str, out: Path, *, batch: int | None = None,
           int8: Int8Images | None = None, include_preprocessing: str | None = None) -> Exported:
    """Write ``trained`` in ``format_name`` to ``out`` (batch axis dynamic unless ``batch``) and verify it: its
    logits on a fixed batch must equal PyTorch's within ``TOLERANCE``, or ``ResnetCifarError`` is raised and the
    file removed. ``int8``: the model quantised post-training, by NNCF for OpenVINO or by ONNX Runtime's static
    quantisation for ONNX, checked by its top-1 agreement with the float32 model on the check images.
    ``include_preprocessing`` (nchw or nhwc): the graph takes uint8 pixels in that layout and normalises them
    itself."""
    check_format(format_name, int8=int8 is not None)
    if int8 is not None:
        if include_preprocessing:
            raise ResnetCifarError("--int8 exports take normalised images: leave out --include-preprocessing")
        return _export_int8(trained, format_name, out, batch, int8)
    if batch is not None and batch < 1:
        raise ResnetCifarError(f"--batch must be a positive integer or 'dynamic', got {batch}")
    model: nn.Module = trained.model.float().eval().cpu()
    generator = torch.Generator().manual_seed(0)
    count = batch or VERIFY_BATCH
    if include_preprocessing:
        model = WithPreprocessing(model, trained.mean, trained.std, include_preprocessing).eval()
        channels, height, width = trained.input_size
        shape = (count, channels, height, width) if include_preprocessing == "nchw" else (count, height, width,
                                                                                          channels)
        images = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    else:
        images = torch.randn(count, *trained.input_size, generator=generator)
    with torch.no_grad():
        reference = model(images)
    writer = {"onnx": _write_onnx, "openvino": _write_openvino, "pt2": _write_pt2}[format_name]
    with staged(out, format_name) as path:
        writer(model, images, path, metadata(trained, include_preprocessing), batch is None)
        found = torch.from_numpy(np.asarray(load_runner(format_name, path)(images.numpy())))
        difference, scale = float((found - reference).abs().max()), max(1.0, float(reference.abs().max()))
        if not difference <= TOLERANCE * scale:
            raise ResnetCifarError(f"the {format_name} export differs from PyTorch by {difference:.3g} in the "
                                   f"logits (allowed {TOLERANCE * scale:.3g}): nothing was written")
    return Exported(out, format_name, difference, scale)


def check_format(format_name: str, *, int8: bool = False) -> None:
    """Refuse an unknown format, or ``--int8`` for a format without an int8 path, before any work is done."""
    if format_name not in FORMATS:
        raise ResnetCifarError(f"unknown format {format_name!r}: choose one of {', '.join(FORMATS)}")
    if int8 and format_name not in INT8_FORMATS:
        raise ResnetCifarError(f"--int8 exports are {' or '.join(INT8_FORMATS)}, not {format_name}: give --format "
                               f"openvino or --format onnx")


def companion_files(path: Path, format_name: str) -> list[Path]:
    """The files an export at ``path`` consists of, the one named last: an OpenVINO IR's weights (.bin) and a
    program's description (.pt2.json) come with it."""
    if format_name == "openvino":
        return [path.with_suffix(".bin"), path]
    if format_name == "pt2":
        return [sidecar_path(path), path]
    return [path]


@contextlib.contextmanager
def staged(out: Path, format_name: str) -> Iterator[Path]:
    """A path to write and check an export at, in a scratch folder beside ``out``; its files replace those at
    ``out`` only when the block ends without an error, so a failed export leaves an earlier file whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        path = scratch / out.name
        yield path
        for written, target in zip(companion_files(path, format_name), companion_files(out, format_name)):
            os.replace(written, target)
        fsync_folder(out.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def int8_images(trained: TrainedModel, dataset: str | None, data_dir: str | None) -> tuple[Int8Images, str]:
    """(images, where) for an int8 export: ``INT8_CALIBRATION_IMAGES`` training images spread over the split and
    the test split of ``dataset`` (default: the model's own, or the bundled sample for a CIFAR-10 model without
    one), preprocessed for ``trained``."""
    info = trained.info
    dataset = dataset or info.get("dataset") or ("cifar10-sample" if trained.class_names == CIFAR10_CLASSES else None)
    if dataset is None:
        raise ResnetCifarError("--int8 calibrates on training images: give --dataset (and --data-dir)")
    folder = data_dir or info.get("config", {}).get("data_dir", "data")
    train, test = (load_dataset(dataset, split, folder, image_size=trained.input_size[1:],
                                class_names=trained.class_names) for split in ("train", "test"))
    calibration = trained.preprocessed(train.spread(INT8_CALIBRATION_IMAGES))
    where = dataset if dataset == "cifar10-sample" else f"{dataset} under {folder}"  # the sample is in the package
    return Int8Images(calibration, trained.preprocessed(test), test.labels.numpy()), where


def _dynamic_batch(dynamic: bool) -> tuple | None:
    return ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic else None


def _write_onnx(model: torch.nn.Module, images: torch.Tensor, out: Path, meta: dict[str, str], dynamic: bool) -> None:
    onnx = require_module("onnx", "onnx")
    require_module("onnxscript", "onnx")
    with tempfile.TemporaryDirectory() as scratch, _quiet("torch.onnx"):
        program = torch.onnx.export(model, (images,), dynamo=True, opset_version=ONNX_OPSET,
                                    dynamic_shapes=_dynamic_batch(dynamic), verbose=False)
        program.save(str(Path(scratch) / "model.onnx"))
        proto = onnx.load(str(Path(scratch) / "model.onnx"))
    _save_onnx(proto, meta, out)


def _save_onnx(proto: Any, meta: dict[str, str], out: Path) -> None:
    """``proto`` with the metadata and the checksum of its graph, written to ``out``."""
    for key, value in {**meta, WEIGHTS_SHA256: onnx_weights_sha256(proto.graph)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    out.write_bytes(proto.SerializeToString())


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Without a tool's progress lines, warnings and log notes below errors (the ONNX exporter's on torchvision's
    operators, which we do not use; NNCF's statistics bars)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


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


def _write_openvino(model: torch.nn.Module, images: torch.Tensor, out: Path, meta: dict[str, str],
                    dynamic: bool) -> None:
    ov = require_module("openvino", "openvino")
    if out.suffix != ".xml":
        raise ResnetCifarError(f"an OpenVINO model is an .xml file (with a .bin beside it), not {out.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape = [-1 if dynamic else len(images), *images.shape[1:]]
        element = ov.Type.u8 if images.dtype == torch.uint8 else ov.Type.f32
        converted = ov.convert_model(model, example_input=images, input=[(shape, element)])
    _save_openvino(converted, meta, out, compress_to_fp16=False)  # float32 weights, as trained


def _save_openvino(model: Any, meta: dict[str, str], out: Path, **options: Any) -> None:
    """``model`` with the metadata, saved as ``out`` and its .bin, the .bin's checksum recorded in the .xml. The
    checksum is known only once the weights are written: the model is saved twice (OpenVINO writes the same .bin
    each time; checked)."""
    ov = require_module("openvino", "openvino")
    for key, value in meta.items():
        model.set_rt_info(value, ["resnet_cifar", key])
    try:
        ov.save_model(model, str(out), **options)
        digest = file_sha256(out.with_suffix(".bin"))
        model.set_rt_info(digest, ["resnet_cifar", WEIGHTS_SHA256])
        ov.save_model(model, str(out), **options)
    except RuntimeError as error:  # OpenVINO reports a file it cannot write as a RuntimeError with C++ lines
        raise ResnetCifarError(f"cannot write {out} ({openvino_reason(error)})") from None
    if file_sha256(out.with_suffix(".bin")) != digest:
        raise ResnetCifarError(f"OpenVINO wrote other weights for {out} the second time: nothing was written")


def openvino_reason(error: BaseException) -> str:
    """The lines of an OpenVINO error that say what went wrong, without its source locations."""
    lines = [line.strip() for line in str(error).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    return "; ".join(useful)[:300] or first_line(error)


def _export_int8(trained: TrainedModel, format_name: str, out: Path, batch: int | None,
                 images: Int8Images) -> Exported:
    """The float32 model exported (verified), quantised on the calibration images in batches, saved as ``out`` with
    the metadata, and compared with the float32 model on the check images."""
    calibration, check = images.calibration, images.check
    chunk = batch or 64
    batches = [calibration[i:i + chunk] for i in range(0, len(calibration) - chunk + 1, chunk)] or [calibration]
    with tempfile.TemporaryDirectory() as scratch, staged(out, format_name) as path:
        float_path = export(trained, format_name, Path(scratch) / f"float{SUFFIXES[format_name]}", batch=batch).path
        quantise = _quantise_openvino if format_name == "openvino" else _quantise_onnx
        quantise(float_path, batches, path, metadata(trained), Path(scratch))
        if check is None or images.check_labels is None:
            return Exported(out, f"{format_name} int8", float("nan"), 1.0)
        reference, found = load_runner(format_name, float_path), load_runner(format_name, path)
        ends = range(chunk, len(check) + 1, chunk) if batch else range(chunk, len(check) + chunk, chunk)
        answers = [(reference(check[end - chunk:end]).argmax(1), found(check[end - chunk:end]).argmax(1),
                    images.check_labels[end - chunk:end]) for end in ends]
    float_answers, int8_answers, labels = (np.concatenate(column) for column in zip(*answers))
    return Exported(out, f"{format_name} int8", float("nan"), 1.0, float(np.mean(float_answers == int8_answers)),
                    (float(np.mean(float_answers == labels)), float(np.mean(int8_answers == labels))))


def _quantise_openvino(float_path: Path, batches: list[np.ndarray], out: Path, meta: dict[str, str],
                       scratch: Path) -> None:
    """NNCF's post-training quantisation of an OpenVINO IR."""
    ov = require_module("openvino", "openvino")
    nncf = require_module("nncf", "openvino")
    model = ov.Core().read_model(str(float_path))
    with _quiet("nncf"):
        # The slower, exact bias correction: on the shipped ResNet-20 (AVX2 CPU, full test split of our copy)
        # it kept 98.5% of the float32 answers against 97.7% with the fast one, at the same accuracy.
        quantised = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches), fast_bias_correction=False)
    _save_openvino(quantised, meta, out)


def _quantise_onnx(float_path: Path, batches: list[np.ndarray], out: Path, meta: dict[str, str],
                   scratch: Path) -> None:
    """ONNX Runtime's static quantisation (QDQ, uint8 activations, int8 weights, min-max calibration)."""
    onnx = require_module("onnx", "onnx")
    require_module("onnxruntime", "onnx")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantised = scratch / "prepared.onnx", scratch / "quantised.onnx"
    name = load_onnx(float_path).get_inputs()[0].name

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.remaining, None)
            return None if batch is None else {name: batch}

    with _quiet("onnxruntime"):
        quant_pre_process(str(float_path), str(prepared))
        # reduce_range (7-bit weights), as ONNX Runtime advises for CPUs without VNNI, where u8 x s8 sums saturate:
        # on the shipped ResNet-20 (AVX2 CPU, full test split of our copy) 87.44% against 87.34% without it
        # (float32 87.68%).
        quantize_static(str(prepared), str(quantised), Batches(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
    _save_onnx(onnx.load(str(quantised)), meta, out)


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


def _write_pt2(model: torch.nn.Module, images: torch.Tensor, out: Path, meta: dict[str, str], dynamic: bool) -> None:
    program = torch.export.export(model, (images,), dynamic_shapes=_dynamic_batch(dynamic))
    torch.export.save(program, str(out))
    described = {key: value if key in TEXT_METADATA else json.loads(value) for key, value in meta.items()}
    sidecar_path(out).write_text(json.dumps({**described, ARCHIVE_SHA256: file_sha256(out)}, indent=2) + "\n")


def require_module(module: str, extra: str) -> Any:
    """Import an optional runtime; any failure is the one-line error that names the extra to install."""
    try:
        return __import__(module)
    except Exception as error:  # noqa: BLE001  a broken install fails in many ways; each means "not available"
        raise ResnetCifarError(f"this format needs {module}: pip install 'resnet-cifar[{extra}]' "
                               f"({type(error).__name__}: {first_line(error)})") from None
