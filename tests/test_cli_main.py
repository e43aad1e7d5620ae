"""train, eval and predict end to end in subprocesses on the bundled sample."""
from __future__ import annotations

import csv
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

EPOCHS = 6


@pytest.fixture(scope="module")
def trained(run_cli, tmp_path_factory) -> tuple[Path, str]:
    """One CLI training run shared by the tests below: (run folder, what it printed)."""
    folder = tmp_path_factory.mktemp("runs") / "resnet20"
    result = run_cli("train", "--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", str(EPOCHS),
                     "--batch-size", "64", "--lr", "0.05", "--device", "cpu", "--out", str(folder))
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


@pytest.fixture(scope="module")
def images(make_image, tmp_path_factory) -> Path:
    """A folder of images of several kinds and sizes."""
    folder = tmp_path_factory.mktemp("images")
    make_image(folder / "photo.jpg", size=(120, 90))
    make_image(folder / "graphic.png", size=(32, 32), seed=1)
    make_image(folder / "gray.png", size=(64, 64), mode="L", seed=2)
    make_image(folder / "alpha.png", size=(17, 50), mode="RGBA", seed=3)
    return folder


@pytest.fixture(scope="module")
def server(images):
    """A local http server on 127.0.0.1 serving the images folder plus an HTML page."""
    (images / "page.html").write_text("<html><body>not an image</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(images))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _metrics(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_folder(trained) -> None:
    folder, stdout = trained
    for name in ("config.json", "metrics.csv", "last.pt", "model.safetensors", "model.json", "curves.png"):
        assert (folder / name).stat().st_size > 0, name
    assert list(folder.glob("events.out.tfevents.*"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "resnet20" and config["environment"]["torch"]
    assert [int(r["epoch"]) for r in _metrics(folder)] == list(range(1, EPOCHS + 1))
    epoch_lines = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == EPOCHS and "train loss" in epoch_lines[-1] and "test loss" in epoch_lines[-1]
    assert "lr " in epoch_lines[-1] and "val " not in epoch_lines[-1]


def test_short_run_beats_chance_clearly(trained) -> None:
    # 10 classes, 500 test images: chance is 10% with a standard deviation of 1.3 points.
    assert float(_metrics(trained[0])[-1]["test_acc"]) > 0.2


def test_eval_reproduces_training_accuracy_and_writes_reports(trained, run_cli, tmp_path) -> None:
    folder, _ = trained
    result = run_cli("eval", str(folder), "--json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["correct"] == round(float(_metrics(folder)[-1]["test_acc"]) * 500)
    assert set(results["per_class"]) >= {"airplane", "truck"} and len(results["confusion"]) == 10
    for name in ("eval.json", "confusion.png", "predictions.png", "mistakes.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = run_cli("eval", str(folder / "last.pt"), "--tta", "--out", str(tmp_path))
    assert table.returncode == 0 and "overall" in table.stdout and "flip TTA" in table.stdout


def test_predict_files_folder_and_url(trained, images, server, run_cli) -> None:
    folder, _ = trained
    result = run_cli("predict", str(folder), str(images / "photo.jpg"), str(images), f"{server}/graphic.png",
                     "--top-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert len(predictions) == 1 + 4 + 1
    assert predictions[-1]["input"].startswith("http://127.0.0.1")
    for item in predictions:
        probabilities = [p["probability"] for p in item["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6
    table = run_cli("predict", str(folder / "model.safetensors"), str(images / "gray.png"))
    assert table.returncode == 0 and "gray.png" in table.stdout and " 1. " in table.stdout


@pytest.mark.parametrize("target,message", [("{server}/page.html", "not an image"),
                                            ("{server}/missing.png", "cannot fetch"),
                                            ("file:///etc/passwd", "only http:// and https://"),
                                            ("no-such-file.png", "does not exist")])
def test_predict_bad_inputs_are_one_line_errors(trained, server, run_cli, target: str, message: str) -> None:
    result = run_cli("predict", str(trained[0]), target.format(server=server))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_resume_of_a_finished_run_trains_nothing_more(trained, run_cli) -> None:
    folder, _ = trained
    result = run_cli("train", "--resume", str(folder), "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(_metrics(folder)) == EPOCHS


def test_bad_option_is_one_line_in_a_real_process(run_cli, tmp_path) -> None:
    # The full corpus of bad inputs runs in process (tests/test_bad_inputs.py); this proves the process level.
    result = run_cli("train", "--dataset", "cifar10-sample", "--out", str(tmp_path / "x"), "--epochs", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "resnet-cifar: error: --epochs must be a positive integer, got 0"
