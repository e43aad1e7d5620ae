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
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..core.source import ModelSource, resolve_source
from ..data import load_dataset
from ..data.class_names import CIFAR10_CLASSES
from ..errors import ResnetCifarError
from ..files import file_sha256, fsync_folder
from .checksums import ARCHIVE_SHA256, WEIGHTS_SHA256, onnx_weights_sha256
from .loading import load_trained_model
from .pt2_archive import sidecar_path
from .runtimes import input_description, load_onnx, load_runner, openvino_reason, require_module
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
            "temperature": json.dumps(trained.temperature), "producer": "resnet-cifar"}


def export(model: TrainedModel | ModelSource | str | Path, format_name: str, out: str | Path | None = None, *,
           batch: int | None = None, int8: Int8Images | None = None,
           include_preprocessing: str | None = None) -> Exported:
    """Write ``model`` (loaded, or a source to load) in ``format_name`` to ``out`` (default: ``model.SUFFIX`` in
    its folder, ``./NAME.SUFFIX`` for shipped weights; batch axis dynamic unless ``batch``) and verify it: its
    logits on a fixed batch must equal PyTorch's within ``TOLERANCE``, or ``ResnetCifarError`` is raised and the
    file removed. ``int8``: the model quantised post-training, by NNCF for OpenVINO or by ONNX Runtime's static
    quantisation for ONNX, checked by its top-1 agreement with the float32 model on the check images.
    ``include_preprocessing`` (nchw or nhwc): the graph takes uint8 pixels in that layout and normalises them
    itself."""
    check_format(format_name, int8=int8 is not None)
    trained = _with_weights(model)
    out = Path(out) if out is not None else _default_out(trained, format_name)
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


def _with_weights(model: TrainedModel | ModelSource | str | Path) -> TrainedModel:
    """``model`` as a PyTorch ``TrainedModel``: loaded from a source, and never an exported file (no weights)."""
    if isinstance(model, TrainedModel):
        if model.runtime is not None:
            ModelSource(Path(model.info["exported"]["file"])).require_weights("export")
        return model
    source = resolve_source(model)
    source.require_weights("export")
    return load_trained_model(source)


def _default_out(trained: TrainedModel, format_name: str) -> Path:
    if trained.source is None:
        raise ResnetCifarError("give the file to write (out): this model was not loaded from a folder or file")
    return trained.source.export_path(SUFFIXES[format_name])


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


def _write_pt2(model: torch.nn.Module, images: torch.Tensor, out: Path, meta: dict[str, str], dynamic: bool) -> None:
    program = torch.export.export(model, (images,), dynamic_shapes=_dynamic_batch(dynamic))
    torch.export.save(program, str(out))
    described = {key: value if key in TEXT_METADATA else json.loads(value) for key, value in meta.items()}
    sidecar_path(out).write_text(json.dumps({**described, ARCHIVE_SHA256: file_sha256(out)}, indent=2) + "\n")
