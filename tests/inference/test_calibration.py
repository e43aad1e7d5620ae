"""Calibration: the error measures against hand-computed cases and torchmetrics, temperature scaling fitted on
validation images only, and the temperature carried by model.json into eval, predict and an exported file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resnet_cifar import ResnetCifarError
from resnet_cifar.core.batches import Predictions
from resnet_cifar.core.saved_model import check_info
from resnet_cifar.inference.calibrate import calibrate
from resnet_cifar.inference.calibration import calibration_report, fit_temperature
from resnet_cifar.inference.predict import load_input

EXAMPLES = Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples"


def _from_probabilities(probabilities: list[list[float]], labels: list[int]) -> Predictions:
    return Predictions(torch.tensor(probabilities).log(), torch.tensor(labels))


def test_the_measures_on_a_case_worked_by_hand() -> None:
    # confidences 0.9 (right), 0.9 (wrong), 0.58 (right), 0.55 (wrong): bins (0.8667, 0.9333] and (0.5333, 0.6]
    predictions = _from_probabilities([[0.9, 0.1], [0.9, 0.1], [0.42, 0.58], [0.55, 0.45]], [0, 1, 1, 1])
    report = calibration_report(predictions)
    # top bin: accuracy 1/2, confidence 0.9 -> gap 0.4; lower bin: accuracy 1/2, confidence 0.565 -> gap 0.065
    assert report["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.065, rel=1e-6)
    assert report["mce"] == pytest.approx(0.4, rel=1e-6)
    assert report["nll"] == pytest.approx(-(torch.tensor([0.9, 0.1, 0.58, 0.45]).log().mean()).item(), rel=1e-6)
    assert report["brier"] == pytest.approx((2 * 0.01 + 2 * 0.81 + 2 * 0.42 ** 2 + 2 * 0.55 ** 2) / 4, rel=1e-6)
    assert [row["count"] for row in report["bins"]] == [0] * 8 + [2] + [0] * 4 + [2, 0]
    assert report["bins"][13]["accuracy"] == 0.5 and report["bins"][0]["accuracy"] is None


def test_the_calibration_errors_agree_with_torchmetrics() -> None:
    metrics = pytest.importorskip("torchmetrics.classification")
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2000, 10, generator=generator)
    labels = torch.randint(0, 10, (2000,), generator=generator)
    labels[:1200] = logits[:1200].argmax(1)  # right about 60%, and over-confident
    report = calibration_report(Predictions(logits, labels))
    probabilities = F.softmax(logits, 1)
    for norm, ours in (("l1", report["ece"]), ("max", report["mce"])):
        theirs = metrics.MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)(probabilities, labels)
        assert ours == pytest.approx(float(theirs), abs=1e-5)


def test_a_fitted_temperature_recovers_the_one_that_made_a_model_over_confident() -> None:
    generator = torch.Generator().manual_seed(1)
    true_logits = 2 * torch.randn(20000, 10, generator=generator)
    labels = torch.multinomial(F.softmax(true_logits, 1), 1, generator=generator)[:, 0]  # calibrated by design
    over_confident = Predictions(2.5 * true_logits, labels)
    temperature = fit_temperature(over_confident)
    assert temperature == pytest.approx(2.5, rel=0.05)
    assert calibration_report(over_confident.at_temperature(temperature))["ece"] < 0.02 < \
        calibration_report(over_confident)["ece"]
    with pytest.raises(ResnetCifarError, match="without test-time augmentation"):
        fit_temperature(Predictions(true_logits, labels, "flip", true_logits[None]))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf"), 1e9, "2", True])
def test_a_broken_temperature_in_a_model_description_is_refused(temperature) -> None:
    info = {"model": "resnet20", "num_classes": 2, "class_names": ["a", "b"], "input_size": [3, 32, 32],
            "mean": [0.5] * 3, "std": [0.25] * 3, "temperature": temperature}
    with pytest.raises(ResnetCifarError, match="temperature"):
        check_info(info, "model.json")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """A ResNet-20 trained briefly on the bundled sample with 200 images held out, then calibrated."""
    from resnet_cifar.training.config import TrainConfig
    from resnet_cifar.training.trainer import train

    folder = tmp_path_factory.mktemp("calibrated") / "run"
    train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=100, lr=0.05, val_split=200,
                      device="cpu", out=str(folder)))
    return folder


def test_calibrate_fits_on_the_held_out_images_and_eval_applies_it(calibrated, tmp_path) -> None:
    from resnet_cifar import evaluate

    plain = evaluate(calibrated, out_dir=tmp_path / "before", device="cpu")
    fitted = calibrate(calibrated, device="cpu")
    described = json.loads((calibrated / "model.json").read_text())
    assert described["temperature"] == fitted["temperature"] != 1
    assert fitted["images"] == 200 and fitted["nll"] < fitted["nll_before"]
    results = evaluate(calibrated, out_dir=tmp_path / "after", device="cpu")
    assert results["accuracy"] == plain["accuracy"]  # a temperature never changes the answer
    assert results["calibration"]["temperature"] == fitted["temperature"]
    assert results["calibration_before_scaling"]["ece"] == pytest.approx(plain["calibration"]["ece"])
    assert results["calibration"]["nll"] != pytest.approx(plain["calibration"]["nll"])
    assert (tmp_path / "after" / "reliability.png").is_file()


def test_predict_and_an_exported_file_give_the_calibrated_probabilities(calibrated, tmp_path) -> None:
    from resnet_cifar import export, predict
    from resnet_cifar.inference.loading import load_trained_model

    calibrate(calibrated, device="cpu")
    temperature = json.loads((calibrated / "model.json").read_text())["temperature"]
    trained = load_trained_model(calibrated)
    cat = str(EXAMPLES / "cat.png")
    answer = predict(trained, [cat], top_k=10)[0]["predictions"]
    with torch.no_grad():
        logits = trained.model(trained.normalised(load_input(cat, (32, 32), 5.0)[None]))[0]
    expected = F.softmax(logits / temperature, 0)
    for row in answer:
        assert row["probability"] == pytest.approx(float(expected[trained.class_names.index(row["class"])]),
                                                   abs=1e-5)
    export(trained, "onnx", tmp_path / "model.onnx")
    exported = predict(tmp_path / "model.onnx", [cat], top_k=10, device="cpu")[0]["predictions"]
    assert [r["class"] for r in exported] == [r["class"] for r in answer]
    assert [r["probability"] for r in exported] == pytest.approx([r["probability"] for r in answer], abs=1e-4)
    with pytest.raises(ResnetCifarError, match="calibrate the run it came from"):
        calibrate(tmp_path / "model.onnx")


def test_calibrate_refuses_what_has_no_validation_images_or_no_model_json(calibrated, tmp_path) -> None:
    from resnet_cifar.training.config import TrainConfig
    from resnet_cifar.training.trainer import train

    whole = tmp_path / "whole"
    train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=1, batch_size=100, train_subset=100,
                      device="cpu", out=str(whole)))
    with pytest.raises(ResnetCifarError, match="train it with --val-split"):
        calibrate(whole, device="cpu")
    with pytest.raises(ResnetCifarError, match="none are left to fit a temperature on"):
        calibrate(None, pretrained="resnet20")
    with pytest.raises(ResnetCifarError, match="no model.json"):
        calibrate(calibrated / "last.pt", device="cpu")
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(calibrated / "model.safetensors", loose)
    with pytest.raises(ResnetCifarError, match="model.json"):
        calibrate(loose, device="cpu")


def test_resuming_a_finished_calibrated_run_keeps_its_temperature(calibrated, tmp_path) -> None:
    from resnet_cifar.training.trainer import train

    folder = tmp_path / "run"
    shutil.copytree(calibrated, folder)
    calibrate(folder, device="cpu")
    fitted = json.loads((folder / "model.json").read_text())
    (folder / "metrics.csv").unlink()  # as a kill during the last save can leave it: resuming repairs the reports
    train(resume=folder, quiet=True)
    repaired = json.loads((folder / "model.json").read_text())
    assert (folder / "metrics.csv").is_file()
    assert repaired["temperature"] == fitted["temperature"] and repaired["calibration"] == fitted["calibration"]


@pytest.mark.parametrize("broken", [float("nan"), 1e9, "warm"])
def test_calibrate_replaces_a_broken_temperature_that_every_other_command_refuses(calibrated, tmp_path,
                                                                                   broken) -> None:
    from resnet_cifar import evaluate

    folder = tmp_path / "run"
    shutil.copytree(calibrated, folder)
    described = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**described, "temperature": broken}))
    with pytest.raises(ResnetCifarError, match="fit it again with resnet-cifar calibrate"):
        evaluate(folder, out_dir=tmp_path / "refused", device="cpu")
    fitted = calibrate(folder, device="cpu")
    assert json.loads((folder / "model.json").read_text())["temperature"] == fitted["temperature"]
    assert evaluate(folder, out_dir=tmp_path / "repaired", device="cpu")["calibration"]["temperature"] == \
        fitted["temperature"]
