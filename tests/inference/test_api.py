"""The Python API is symmetric: evaluate, predict, export and serve's model each take a loaded model or a source."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_cifar import ResnetCifarError, create_model, evaluate, export, load_trained_model, predict, resolve_source
from resnet_cifar.core.checkpoint import export_model
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.data import load_dataset
from resnet_cifar.inference.trained import TrainedModel
from resnet_cifar.serve.model import load_served_model

EXAMPLES = Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, sample_folder) -> Path:
    """An untrained ResNet-20 for 16x16 images of the small sample folder (100 test images), saved as a run
    would save it."""
    folder = tmp_path_factory.mktemp("model")
    classes = load_dataset("folder", "test", sample_folder, image_size=(16, 16)).class_names
    torch.manual_seed(0)
    info = model_info("resnet20", {}, classes, (3, 16, 16), [0.49, 0.48, 0.45], [0.25, 0.24, 0.26],
                      dataset="folder", config={"data_dir": str(sample_folder)})
    export_model(folder, create_model("resnet20").state_dict(), info)
    return folder


def test_evaluate_takes_a_loaded_model_a_source_or_a_path_alike(model_folder, tmp_path) -> None:
    loaded = load_trained_model(model_folder)
    by_model = evaluate(loaded, out_dir=tmp_path / "a", device="cpu")
    by_source = evaluate(resolve_source(model_folder), out_dir=tmp_path / "b", device="cpu")
    by_path = evaluate(model_folder, device="cpu")  # reports in the model's own folder
    assert by_model["accuracy"] == by_source["accuracy"] == by_path["accuracy"]
    assert by_model["source"] == by_path["source"] == str(model_folder)
    assert (tmp_path / "a" / "eval.json").is_file() and (model_folder / "eval.json").is_file()
    unsourced = TrainedModel(loaded.model, loaded.info)
    with pytest.raises(ResnetCifarError, match="give out_dir"):
        evaluate(unsourced, device="cpu")
    assert evaluate(unsourced, out_dir=tmp_path / "c", device="cpu")["source"] is None


def test_predict_takes_a_loaded_model_a_source_or_a_path_alike(model_folder) -> None:
    images = [str(EXAMPLES)]
    answers = [predict(model, images, top_k=2) for model in
               (load_trained_model(model_folder), resolve_source(model_folder), str(model_folder))]
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 3


def test_export_writes_beside_the_model_by_default_whatever_it_is_given(model_folder, tmp_path) -> None:
    assert export(resolve_source(model_folder), "pt2").path == model_folder / "model.pt2"
    elsewhere = tmp_path / "elsewhere.pt2"
    assert export(load_trained_model(model_folder), "pt2", elsewhere).path == elsewhere
    exported = load_trained_model(model_folder / "model.pt2")
    with pytest.raises(ResnetCifarError, match="is an exported file, which holds no PyTorch weights to export"):
        export(exported, "pt2", tmp_path / "again.pt2")
    with pytest.raises(ResnetCifarError, match="give the file to write"):
        export(TrainedModel(exported.model, exported.info), "onnx")


def test_the_served_model_takes_a_loaded_model_or_a_source(model_folder) -> None:
    loaded = load_trained_model(model_folder)
    served = [load_served_model(model, "torch") for model in (loaded, resolve_source(model_folder), model_folder)]
    assert {model.name for model in served} == {model_folder.name}
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(served[0].classify(images), served[2].classify(images))
