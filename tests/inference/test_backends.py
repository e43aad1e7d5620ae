"""eval and predict with --backend: the exported model run by ONNX Runtime or OpenVINO gives PyTorch's answers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from resnet_cifar.cli import main
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.inference.backends import choose_backend, resolve_backend
from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.inference.export import export
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.inference.predict import predict
from resnet_cifar.inference.pretrained import load_pretrained
from resnet_cifar.inference.trained import TrainedModel
from resnet_cifar.models.weights import pretrained_weights

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
    monkeypatch.setattr("resnet_cifar.inference.backends.installed", lambda backend: backend in ("torch", "onnxruntime"))
    assert resolve_backend("auto", CPU) == "onnxruntime"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr("resnet_cifar.inference.backends.installed", lambda backend: backend == "torch")
    assert resolve_backend("auto", CPU) == "torch"
    with pytest.raises(ResnetCifarError, match=r"pip install 'resnet-cifar\[openvino\]'"):
        resolve_backend("openvino", CPU)


def test_backend_misuse_is_a_one_line_error(capsys) -> None:
    with pytest.raises(ResnetCifarError, match="runs on the CPU"):
        resolve_backend("onnxruntime", torch.device("cuda"))
    with pytest.raises(ResnetCifarError, match="int8 inference runs on the CPU only"):
        choose_backend(TrainedModel(torch.nn.Linear(2, 2).to("meta"), {}), "openvino", int8=True)


def test_eval_json_records_the_backend(tmp_path, capsys) -> None:
    assert main(["eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--backend", "onnxruntime",
                 "--json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["backend"] == "onnxruntime"


@pytest.fixture(scope="module")
def exported_files(tmp_path_factory) -> dict[str, Path]:
    """The shipped resnet20 in each format, and as ONNX that takes uint8 pixels."""
    folder = tmp_path_factory.mktemp("exported")
    trained = load_pretrained("resnet20")
    files = {name: export(trained, format_name, folder / name).path
             for name, format_name in (("r20.onnx", "onnx"), ("r20.xml", "openvino"), ("r20.pt2", "pt2"))}
    files["pixels.onnx"] = export(trained, "onnx", folder / "pixels.onnx", include_preprocessing="nhwc").path
    return files


@pytest.mark.parametrize("name,runtime", [("r20.onnx", "onnxruntime"), ("r20.xml", "openvino"), ("r20.pt2", "torch"),
                                          ("pixels.onnx", "onnxruntime")])
def test_an_exported_file_is_evaluated_as_its_model(torch_results, exported_files, name, runtime, tmp_path) -> None:
    results = evaluate(exported_files[name], dataset="cifar10-sample", out_dir=tmp_path)
    assert results["backend"] == runtime
    assert results["correct"] == torch_results["correct"]
    assert results["loss"] == pytest.approx(torch_results["loss"], rel=1e-4)


def test_predict_from_an_exported_file_alone(exported_files, make_image, tmp_path, capsys) -> None:
    image = str(make_image(tmp_path / "cat.png"))
    reference = predict(pretrained_weights("resnet20"), [image], top_k=3, device="cpu")[0]["predictions"]
    assert main(["predict", str(exported_files["pixels.onnx"]), image, "--top-k", "3", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert [p["class"] for p in found] == [p["class"] for p in reference]
    assert [p["probability"] for p in found] == pytest.approx([p["probability"] for p in reference], abs=1e-5)


def test_an_exported_file_runs_only_with_its_runtime(exported_files, tmp_path, capsys) -> None:
    onnx_file = str(exported_files["r20.onnx"])
    for extra, message in ((["--backend", "openvino"], "is run by onnxruntime: give --backend onnxruntime or auto"),
                           (["--int8"], "is run as it was exported: for int8, export with --format openvino --int8")):
        assert main(["eval", onnx_file, "--dataset", "cifar10-sample", "--out", str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ResnetCifarError, match="is an exported file and runs on the CPU"):
        load_trained_model(onnx_file, torch.device("cuda"))  # --device cuda, where a GPU is


def test_an_exported_file_without_its_metadata_is_refused(exported_files, tmp_path) -> None:
    proto = onnx.load(str(exported_files["r20.onnx"]))
    props = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(ResnetCifarError, match="carries no resnet-cifar metadata"):
        load_trained_model(tmp_path / "bare.onnx")
    for key, value in {**props, "class_names": '["cat", '}.items():  # a damaged entry
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp_path / "damaged.onnx"))
    with pytest.raises(ResnetCifarError, match="the metadata of .*damaged.onnx is damaged"):
        load_trained_model(tmp_path / "damaged.onnx")
    shutil.copy(exported_files["r20.pt2"], tmp_path / "alone.pt2")  # without the JSON written beside it
    with pytest.raises(ResnetCifarError, match=r"alone.pt2.json \(the description of alone.pt2\) is missing"):
        load_trained_model(tmp_path / "alone.pt2")
    (tmp_path / "cut.xml").write_text(exported_files["r20.xml"].read_text()[:2000])
    shutil.copy(exported_files["r20.xml"].with_suffix(".bin"), tmp_path / "cut.bin")
    with pytest.raises(ResnetCifarError, match="is not a loadable OpenVINO model"):
        load_trained_model(tmp_path / "cut.xml")


def test_auto_says_which_backend_it_took(tmp_path, capsys) -> None:
    assert main(["eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--backend", "auto",
                 "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "--backend auto: the model runs with openvino" in captured.err  # both runtimes installed (make test)
    overall = next(line for line in captured.out.splitlines() if line.startswith("overall"))
    assert overall.endswith("(backend openvino)")
