"""eval and predict with --backend: the exported model run by ONNX Runtime or OpenVINO gives PyTorch's answers."""
from __future__ import annotations

import json

import pytest
import torch

from resnet_cifar.cli import main
from resnet_cifar.engine.backends import resolve_backend
from resnet_cifar.engine.evaluate import evaluate
from resnet_cifar.engine.predict import predict
from resnet_cifar.engine.pretrained import pretrained_weights
from resnet_cifar.errors import ResnetCifarError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def torch_results(tmp_path_factory) -> dict:
    return evaluate(pretrained_weights("resnet20"), dataset="cifar10-sample", device="cpu",
                    out_dir=tmp_path_factory.mktemp("torch"))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_eval_with_a_runtime_gives_pytorchs_accuracy_on_the_sample(torch_results, backend, tmp_path) -> None:
    results = evaluate(pretrained_weights("resnet20"), dataset="cifar10-sample", out_dir=tmp_path, backend=backend)
    assert results["backend"] == backend and torch_results["backend"] == "torch"
    assert results["correct"] == torch_results["correct"]  # all 500 images: no answer moves
    assert results["loss"] == pytest.approx(torch_results["loss"], rel=1e-4)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_predict_with_a_runtime_gives_pytorchs_probabilities(backend, make_image, tmp_path) -> None:
    images = [str(make_image(tmp_path / f"{i}.png", seed=i)) for i in range(3)]
    reference = predict(pretrained_weights("resnet20"), images, top_k=3, device="cpu")
    found = predict(pretrained_weights("resnet20"), images, top_k=3, backend=backend)
    for a, b in zip(reference, found):
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        for p, q in zip(a["predictions"], b["predictions"]):
            assert q["probability"] == pytest.approx(p["probability"], abs=1e-5)


def test_auto_takes_a_runtime_on_the_cpu_and_torch_elsewhere(monkeypatch) -> None:
    assert resolve_backend("auto", CPU) == "openvino"  # both installed (make test): the measured order
    monkeypatch.setattr("resnet_cifar.engine.backends.installed", lambda backend: backend in ("torch", "onnxruntime"))
    assert resolve_backend("auto", CPU) == "onnxruntime"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr("resnet_cifar.engine.backends.installed", lambda backend: backend == "torch")
    assert resolve_backend("auto", CPU) == "torch"
    with pytest.raises(ResnetCifarError, match=r"pip install 'resnet-cifar\[openvino\]'"):
        resolve_backend("openvino", CPU)


def test_backend_misuse_is_a_one_line_error(capsys) -> None:
    with pytest.raises(ResnetCifarError, match="runs on the CPU"):
        resolve_backend("onnxruntime", torch.device("cuda"))
    assert main(["eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--backend", "openvino",
                 "--int8", "--out", "unused"]) == 2
    assert "--int8 runs with --backend torch" in capsys.readouterr().err


def test_eval_json_records_the_backend(tmp_path, capsys) -> None:
    assert main(["eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--backend", "onnxruntime",
                 "--json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["backend"] == "onnxruntime"
