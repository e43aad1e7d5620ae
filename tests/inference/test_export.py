"""resnet-cifar export: each format is written, loads in its own runtime with PyTorch's logits, carries the
preprocessing, and a damaged file is a one-line error."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime
import openvino
import pytest
import torch

from resnet_cifar.cli import main
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.data import ImageSet
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.inference.export import SUFFIXES, Int8Images, export
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.inference.runtimes import load_onnx, load_openvino
from resnet_cifar.inference.trained import TrainedModel
from resnet_cifar.models import create_model

CLASSES = [f"c{i}" for i in range(10)]


def _trained(name: str, **options) -> TrainedModel:
    model = create_model(name, **options).eval()
    for module in model.modules():  # trained-like statistics: no layer is an identity, nothing explodes
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    info = model_info(name, options, CLASSES, (3, 32, 32), [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    return TrainedModel(model, info)


def _run_in_runtime(format_name: str, path, images: np.ndarray) -> np.ndarray:
    """The exported file run by its runtime directly, as a user without resnet-cifar would."""
    if format_name == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    if format_name == "openvino":
        core = openvino.Core()
        return core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(images)[0]
    return torch.export.load(str(path)).module()(torch.from_numpy(images)).detach().numpy()


CASES = [("resnet20", {}), ("resnet18", {}), ("resnet18", {"stem": "imagenet"}), ("preact-resnet18", {}),
         ("wrn-10-2", {"dropout": 0.3}), ("resnext29-2x16d", {}), ("seresnet18", {}), ("resnet9", {})]


@pytest.mark.parametrize("format_name", ["onnx", "openvino", "pt2"])
@pytest.mark.parametrize("name,options", CASES, ids=["resnet20", "resnet18", "resnet18-imagenet-stem", "preact-resnet18",
                                                     "wrn-10-2-dropout", "resnext29-2x16d", "seresnet18", "resnet9"])
def test_each_format_runs_in_its_runtime_with_pytorchs_logits(tmp_path, format_name, name, options) -> None:
    trained = _trained(name, **options)
    done = export(trained, format_name, tmp_path / f"m{SUFFIXES[format_name]}")
    images = torch.randn(5, 3, 32, 32)  # another batch size than the check's: the batch axis is dynamic
    with torch.no_grad():
        reference = trained.model(images).numpy()
    found = _run_in_runtime(format_name, done.path, images.numpy())
    assert np.abs(found - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())


@pytest.mark.parametrize("format_name", ["onnx", "openvino"])
@pytest.mark.parametrize("name", ["wrn-10-2", "resnext29-2x16d", "seresnet18", "resnet9"])
def test_int8_exports_of_every_family_stay_close_to_the_float_model(tmp_path, format_name, name) -> None:
    """ONNX Runtime's and NNCF's quantisers take each family (ResNet-9's max-pooled head once broke onnxruntime's
    shape inference)."""
    trained = _trained(name)
    calibration = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    done = export(trained, format_name, tmp_path / f"m{SUFFIXES[format_name]}", int8=Int8Images(calibration))
    images = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        reference = trained.model(torch.from_numpy(images)).numpy().ravel()
    found = _run_in_runtime(format_name, done.path, images).ravel()
    assert np.dot(found, reference) / (np.linalg.norm(found) * np.linalg.norm(reference)) > 0.98


def test_the_preprocessing_travels_in_each_file(tmp_path) -> None:
    trained = _trained("resnet20")
    onnx_path = export(trained, "onnx", tmp_path / "m.onnx").path
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(props["class_names"]) == CLASSES and json.loads(props["std"]) == [0.25, 0.24, 0.26]
    assert props["model"] == "resnet20" and json.loads(props["input_size"]) == [3, 32, 32]
    xml = export(trained, "openvino", tmp_path / "m.xml").path
    model = openvino.Core().read_model(str(xml))
    assert json.loads(model.get_rt_info(["resnet_cifar", "class_names"]).astype(str)) == CLASSES
    export(trained, "pt2", tmp_path / "m.pt2")
    sidecar = json.loads((tmp_path / "m.pt2.json").read_text())
    assert sidecar["class_names"] == CLASSES and sidecar["mean"] == [0.49, 0.48, 0.45]


@pytest.mark.parametrize("format_name,layout", [("onnx", "nhwc"), ("openvino", "nchw"), ("pt2", "nhwc")])
def test_included_preprocessing_takes_uint8_pixels(tmp_path, format_name, layout) -> None:
    trained = _trained("resnet20")
    done = export(trained, format_name, tmp_path / f"m{SUFFIXES[format_name]}", include_preprocessing=layout)
    pixels = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    normalised = trained.preprocessed(ImageSet(pixels, torch.zeros(6, dtype=torch.int64), CLASSES))  # the loader's
    with torch.no_grad():
        reference = trained.model(torch.from_numpy(normalised)).numpy()
    given = pixels.permute(0, 2, 3, 1).contiguous() if layout == "nhwc" else pixels
    found = _run_in_runtime(format_name, done.path, given.numpy())
    assert np.abs(found - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert load_trained_model(done.path).info["exported"]["input"] == f"uint8 {layout.upper()}, RGB 0-255"


def test_a_fixed_batch_is_fixed(tmp_path) -> None:
    path = export(_trained("resnet20"), "onnx", tmp_path / "m.onnx", batch=4).path
    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in shape] == [4, 3, 32, 32]


@pytest.mark.parametrize("format_name", ["onnx", "openvino"])
def test_a_damaged_export_is_a_one_line_error(tmp_path, format_name) -> None:
    path = export(_trained("resnet20"), format_name, tmp_path / f"m{SUFFIXES[format_name]}").path
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    loader = load_onnx if format_name == "onnx" else load_openvino
    with pytest.raises(ResnetCifarError, match="is not a loadable"):
        loader(path)


def test_an_export_that_does_not_match_pytorch_is_not_written(tmp_path, monkeypatch) -> None:
    from resnet_cifar.inference import export as export_module

    monkeypatch.setattr(export_module, "load_runner",
                        lambda format_name, path: lambda images: np.zeros((len(images), 10), np.float32) + 5)
    with pytest.raises(ResnetCifarError, match="differs from PyTorch"):
        export(_trained("resnet20"), "pt2", tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists() and not (tmp_path / "m.pt2.json").exists()


def test_export_command_of_the_shipped_weights(tmp_path, capsys) -> None:
    assert main(["export", "--pretrained", "resnet20", "--format", "onnx", "--out", str(tmp_path / "r20.onnx")]) == 0
    assert "verified against PyTorch: largest logit difference" in capsys.readouterr().out
    assert main(["export", "--pretrained", "resnet20", "--format", "onnx", "--batch", "zero"]) == 2
    assert "--batch must be a positive integer or 'dynamic'" in capsys.readouterr().err
    assert main(["export", "--format", "pt2"]) == 2


@pytest.mark.parametrize("format_name,how", [("openvino", "NNCF"), ("onnx", "ONNX Runtime's static quantisation")])
def test_int8_exports_keep_the_float_answers_and_are_smaller(tmp_path, capsys, format_name, how) -> None:
    suffix = SUFFIXES[format_name]
    assert main(["export", "--pretrained", "resnet20", "--format", format_name, "--int8", "--dataset", "cifar10-sample",
                 "--out", str(tmp_path / f"int8{suffix}")]) == 0
    line = capsys.readouterr().out
    assert f"{format_name} int8 ({how}, calibrated on 1000 training images of cifar10-sample)" in line
    found = re.search(r"on its 500 test images: top-1 agreement with float32 ([\d.]+)%, accuracy ([\d.]+)% "
                      r"\(float32 ([\d.]+)%\)", line)
    agreement, int8_accuracy, float_accuracy = (float(value) for value in found.groups())
    assert agreement >= 95.0  # the shipped model's answers on the bundled test images, mostly kept
    assert float_accuracy == 88.2 and abs(int8_accuracy - float_accuracy) <= 1.0  # BENCHMARKS: 88.2% float32
    assert main(["export", "--pretrained", "resnet20", "--format", format_name,
                 "--out", str(tmp_path / f"f32{suffix}")]) == 0
    weights = ".bin" if format_name == "openvino" else suffix
    assert (tmp_path / f"int8{weights}").stat().st_size < 0.6 * (tmp_path / f"f32{weights}").stat().st_size
    exported = load_trained_model(tmp_path / f"int8{suffix}")  # the metadata travels into the quantised file
    assert exported.class_names[0] == "airplane" and exported.runtime == ("openvino" if format_name == "openvino"
                                                                          else "onnxruntime")


def test_int8_is_for_the_runtimes_formats(capsys, tmp_path) -> None:
    assert main(["export", "--pretrained", "resnet20", "--format", "pt2", "--int8", "--dataset", "cifar10-sample",
                 "--out", str(tmp_path / "x.pt2")]) == 2
    assert "--int8 exports are openvino or onnx, not pt2" in capsys.readouterr().err
