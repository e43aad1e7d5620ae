"""Int8 inference: a quantised model agrees with the float one, takes any batch size, and says what it needs."""
from __future__ import annotations

import sys

import pytest
import torch

from resnet_cifar.engine.config import TrainConfig
from resnet_cifar.engine.evaluate import evaluate
from resnet_cifar.engine.int8 import int8_available, quantize_int8
from resnet_cifar.engine.trained import load_trained_model
from resnet_cifar.engine.trainer import train
from resnet_cifar.errors import ResnetCifarError

needs_torchao = pytest.mark.skipif(not int8_available(), reason="torchao is not installed")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "run"
    return train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=4, batch_size=50, lr=0.05,
                             device="cpu", out=str(out)), quiet=True)


@needs_torchao
def test_int8_eval_keeps_the_float_accuracy_and_predictions(trained_run) -> None:
    float_results = evaluate(trained_run, out_dir=trained_run / "float")
    int8_results = evaluate(trained_run, out_dir=trained_run / "int8", int8=True)
    assert int8_results["int8"] and not float_results["int8"]
    assert float_results["accuracy"] > 0.25  # trained well above chance, so agreement below means something
    assert abs(int8_results["accuracy"] - float_results["accuracy"]) <= 0.03
    float_confusion, int8_confusion = torch.tensor(float_results["confusion"]), torch.tensor(int8_results["confusion"])
    assert int8_confusion.sum() == float_confusion.sum() == 500


@needs_torchao
def test_quantised_model_takes_any_batch_size_and_leaves_the_float_model_alone(trained_run) -> None:
    model = load_trained_model(trained_run).model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(40, 3, 32, 32)
    quantised = quantize_int8(model, [images[:16], images[16:]], chunk=16)
    whole = quantised(images)  # three chunks, the last one padded
    assert whole.shape == (40, 10) and whole.dtype == torch.float32
    torch.testing.assert_close(quantised(images[:3]), whole[:3], rtol=0, atol=1e-5)
    torch.testing.assert_close(quantised(images[35:]), whole[35:], rtol=0, atol=1e-5)
    with torch.no_grad():
        reference = model(images)
    assert (whole.argmax(1) == reference.argmax(1)).float().mean() >= 0.9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert quantised.eval() is quantised
    with pytest.raises(ResnetCifarError, match="inference only"):
        quantised.train()


def test_without_torchao_int8_says_how_to_install_it(trained_run, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e", None)
    assert not int8_available()
    with pytest.raises(ResnetCifarError, match=r"pip install 'resnet-cifar\[int8\]'"):
        evaluate(trained_run, out_dir=trained_run / "refused", int8=True)
