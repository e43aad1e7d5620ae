"""Model cards of shipped weights: every column measured, half precision on disk, `models --pretrained`."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_cifar import ResnetCifarError
from resnet_cifar.cli import main
from resnet_cifar.core.batches import predict_batches
from resnet_cifar.core.checkpoint import export_model
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.core.source import ModelSource
from resnet_cifar.data import load_dataset
from resnet_cifar.inference.calibrate import calibrate
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.model_card import CARD_COLUMNS, card_table, measure_card
from resnet_cifar.inference.pretrained import add_pretrained, half_precision_copy
from resnet_cifar.models import create_model
from resnet_cifar.models.weights import shipped_weights
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.trainer import train


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> Path:
    """A ResNet-20 trained briefly on the bundled sample with 200 images held out, then calibrated."""
    folder = tmp_path_factory.mktemp("card") / "run"
    train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, lr=0.05, val_split=200,
                      device="cpu", out=str(folder)), quiet=True)
    calibrate(folder, device="cpu")
    return folder


def _answers(folder: Path) -> tuple[torch.nn.Module, torch.Tensor]:
    trained = load_trained_model(ModelSource(folder), "cpu")
    data = load_dataset("cifar10-sample", "test", image_size=(32, 32))
    return trained.model, predict_batches(trained.model, trained.batches(data)).probabilities


def test_half_precision_copy_halves_the_file_and_answers_as_the_original(calibrated_run, tmp_path) -> None:
    half = half_precision_copy(calibrated_run, tmp_path / "half")
    size, half_size = ((folder / "model.safetensors").stat().st_size for folder in (calibrated_run, half))
    assert half_size < 0.55 * size
    model, full = _answers(calibrated_run)
    half_model, halved = _answers(half)
    assert all(p.dtype == torch.float32 for p in half_model.parameters())  # stored in half, computed in float32
    assert (full.argmax(1) == halved.argmax(1)).float().mean() >= 0.99
    assert (full - halved).abs().max() < 0.02
    assert load_trained_model(ModelSource(half)).temperature == load_trained_model(
        ModelSource(calibrated_run)).temperature != 1


def test_a_card_measures_every_column_and_the_table_shows_them(calibrated_run, tmp_path) -> None:
    card = measure_card(calibrated_run, data_dir=tmp_path / "data", command="resnet-cifar train --val-split 200",
                        recipe="default", trained_on="a test host", speed_steps=1,
                        corruptions=("gaussian_noise", "fog"), int8=False)
    assert card["parameters"] == 269_722 and card["macs"] == pytest.approx(40.55e6, rel=0.01)
    assert 0.1 < card["test_accuracy"] <= 1 and 0 < card["tta_accuracy"] <= 1
    assert card["ece_before"] != card["ece_after"] and card["temperature"] != 1
    assert 0 < card["corruption_accuracy"] < 1 and card["corruptions"] == ["gaussian_noise", "fog"]
    assert card["cpu_fp32_images_per_s"] > 0 and card["cpu_int8_images_per_s"] is None
    root = tmp_path / "pretrained"
    add_pretrained(calibrated_run, "tiny", test_accuracy=card["test_accuracy"], evaluated_on="the sample",
                   train_minutes=0.1, command=card["command"], card=card, root=root)
    table = card_table({name: weights.card for name, weights in shipped_weights(root).items()})
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["name", "params", "MACs", "accuracy"]
    assert row.split()[:4] == ["tiny", "269,722", "4.06e+07", f"{card['test_accuracy']:.2%}"]
    assert row.split()[-1] == "-"  # int8 not measured
    assert "recipe default, trained by resnet-cifar train --val-split 200, on a test host" in table
    assert len(row.split()) == len(CARD_COLUMNS) + 1


def test_a_card_needs_a_fitted_temperature(tmp_path) -> None:
    info = model_info("resnet20", {}, [f"class{i}" for i in range(10)], (3, 32, 32), [0.5] * 3, [0.25] * 3)
    export_model(tmp_path / "run", create_model("resnet20").state_dict(), info)
    with pytest.raises(ResnetCifarError, match="no fitted temperature: run 'resnet-cifar calibrate"):
        measure_card(tmp_path / "run", data_dir=tmp_path, command="", recipe="", trained_on="")


def test_models_pretrained_lists_the_shipped_weights_with_their_cards(capsys) -> None:
    assert main(["models", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "name" and "ECE" in lines[0] and "15 corruptions" in lines[0]
    assert any(line.startswith("resnet20 ") and "87.68%" in line for line in lines)
