"""Int8 inference: a quantised model agrees with the float one, takes any batch size, and says what it needs."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from resnet_cifar.core.device import cpu_has_vnni
from resnet_cifar.data import load_dataset
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.inference.backends import installed
from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.inference.int8 import int8_available, int8_unavailable_reason, quantize_int8
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.models import create_model
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.trainer import train

needs_torchao = pytest.mark.skipif(not int8_available(), reason=str(int8_unavailable_reason()))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "run"
    return train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=4, batch_size=50, lr=0.05,
                             device="cpu", out=str(out)), quiet=True)


needs_nncf = pytest.mark.skipif(not (installed("openvino") and installed("nncf")),
                                reason="OpenVINO int8 needs the openvino extra (openvino, nncf)")


needs_onnxruntime = pytest.mark.skipif(not installed("onnxruntime"), reason="ONNX Runtime int8 needs the onnx extra")


@pytest.mark.parametrize("backend", [pytest.param("torch", marks=needs_torchao),
                                     pytest.param("openvino", marks=needs_nncf),
                                     pytest.param("onnxruntime", marks=needs_onnxruntime)])
def test_int8_eval_keeps_the_float_accuracy_and_predictions(trained_run, backend) -> None:
    float_results = evaluate(trained_run, out_dir=trained_run / "float")
    int8_results = evaluate(trained_run, out_dir=trained_run / f"int8-{backend}", int8=True, backend=backend)
    assert int8_results["int8"] and not float_results["int8"] and int8_results["backend"] == backend
    assert float_results["accuracy"] > 0.25  # trained well above chance, so agreement below means something
    assert abs(int8_results["accuracy"] - float_results["accuracy"]) <= 0.03
    float_confusion, int8_confusion = torch.tensor(float_results["confusion"]), torch.tensor(int8_results["confusion"])
    for results, confusion in ((float_results, float_confusion), (int8_results, int8_confusion)):
        assert confusion.sum() == 500 and confusion.trace() == results["correct"]
    # Each image whose prediction changed leaves one cell and enters another of its row: at most 3% moved, 5% where
    # the CPU has no VNNI and activations keep to 7 bits (half the resolution: 16 moved on oneDNN's AVX2 kernels).
    assert (int8_confusion - float_confusion).abs().sum() / 2 <= (15 if cpu_has_vnni() else 25)


def _real_images(trained, split: str, count: int) -> torch.Tensor:
    """``count`` images of the bundled sample, preprocessed as the trained model expects."""
    images = load_dataset("cifar10-sample", split).images[:count].float() / 255
    mean, std = torch.tensor(trained.mean).view(1, 3, 1, 1), torch.tensor(trained.std).view(1, 3, 1, 1)
    return (images - mean) / std


@needs_torchao
def test_quantised_model_takes_any_batch_size_and_leaves_the_float_model_alone(trained_run) -> None:
    trained = load_trained_model(trained_run)
    model = trained.model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calibration = _real_images(trained, "train", 200)
    quantised = quantize_int8(model, calibration.split(64), chunk=64)
    images = _real_images(trained, "test", 200)
    whole = quantised(images)  # four chunks, the last one padded
    assert whole.shape == (200, 10) and whole.dtype == torch.float32
    torch.testing.assert_close(quantised(images[:3]), whole[:3], rtol=0, atol=1e-5)
    torch.testing.assert_close(quantised(images[190:]), whole[190:], rtol=0, atol=1e-5)
    with torch.no_grad():
        reference = model(images)
    # Real images, where a trained model is confident: int8 must keep its answers (on every x86 CPU kind).
    assert (whole.argmax(1) == reference.argmax(1)).float().mean() >= 0.9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert quantised.eval() is quantised
    with pytest.raises(ResnetCifarError, match="inference only"):
        quantised.train()


@needs_torchao
@pytest.mark.parametrize("name", ["wrn-10-2", "resnet9", "resnext29-2x16d", "seresnet18"])
def test_every_family_quantises_close_to_its_float_outputs(name: str) -> None:
    """Pre-activation (BN before a convolution stays), ResNet-9 (a residual after a max-pool), grouped convolutions,
    squeeze-and-excitation: torchao's x86 fusions take each, and the logits stay close."""
    model = create_model(name).eval()
    for module in model.modules():  # trained-like statistics: no BatchNorm is an identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    quantised = quantize_int8(model, [torch.randn(16, 3, 32, 32) for _ in range(4)], chunk=16)
    images = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        reference = model(images)
    assert torch.nn.functional.cosine_similarity(quantised(images).flatten(), reference.flatten(), dim=0) > 0.99


@needs_torchao
def test_activations_keep_to_7_bits_on_cpus_without_vnni(trained_run, monkeypatch) -> None:
    """Without VNNI oneDNN sums u8 x s8 products in saturating 16-bit lanes: activations must use 0..127."""
    from resnet_cifar.inference import int8 as int8_module

    asked = []
    real = int8_module._torchao()
    config = real.default_config
    monkeypatch.setattr(int8_module, "_torchao", lambda: SimpleNamespace(
        **{**vars(real), "default_config": lambda **kw: asked.append(kw) or config(**kw)}))
    model = load_trained_model(trained_run).model.eval()
    for has_vnni in (False, True):
        monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: has_vnni)
        quantize_int8(model, [torch.randn(4, 3, 32, 32)])
    assert asked == [{"reduce_range": True}, {"reduce_range": False}]


def test_without_torchao_int8_says_how_to_install_it(trained_run, monkeypatch) -> None:
    monkeypatch.setattr(torch, "__version__", "2.13.0")  # a torch that torchao supports, on any test machine
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e", None)
    assert not int8_available()
    with pytest.raises(ResnetCifarError, match=r"pip install 'resnet-cifar\[int8\]'"):
        evaluate(trained_run, out_dir=trained_run / "refused", int8=True, backend="torch")


@pytest.mark.parametrize("failure", [AttributeError("module 'torch' has no attribute 'int1'"),
                                     RuntimeError("operator torchao::x does not exist")])
def test_torchao_failing_inside_its_import_means_unavailable_with_the_reason(monkeypatch, failure) -> None:
    import builtins

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(torch, "__version__", "2.13.0")  # a torch that torchao supports, on any test machine
    monkeypatch.setattr(builtins, "__import__", failing)
    assert not int8_available()
    reason = int8_unavailable_reason()
    assert "torchao fails to import on torch 2.13.0" in reason and str(failure) in reason


def test_an_old_torch_is_named_before_torchao_is_tried(monkeypatch) -> None:
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu121")
    assert int8_unavailable_reason() == "int8 inference needs torch >= 2.11 (torchao's requirement); this is torch " \
                                        "2.5.1+cu121"
