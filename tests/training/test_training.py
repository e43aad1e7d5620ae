"""The training loop end to end on the bundled sample, on the CPU."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from resnet_cifar import ResnetCifarError, create_model
from resnet_cifar.core.batches import predict_batches
from resnet_cifar.core.checkpoint import load_checkpoint
from resnet_cifar.data import load_dataset
from resnet_cifar.data.loader import BatchLoader
from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.interrupt import StopRequests
from resnet_cifar.training.loop import EpochTally, train_epoch
from resnet_cifar.training.trainer import Run, train

CPU = torch.device("cpu")


# Runs here test mechanics, not learning: 16x16 images of a small ImageFolder tree (conftest.sample_folder),
# 200 for training and 100 for testing.
TINY: dict = {"dataset": "folder", "image_size": 16}


@pytest.fixture(autouse=True, scope="module")
def _tiny_data(sample_folder) -> None:
    TINY["data_dir"] = str(sample_folder)


def _config(out, **settings) -> TrainConfig:
    values = {"model": "resnet20", **TINY, "epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu",
              "out": str(out), **settings}
    return TrainConfig(**values)


def _rows(folder) -> list[dict]:
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_tiny_overfit_reaches_full_train_accuracy() -> None:
    data = load_dataset("cifar10-sample", "train")
    data = data.subset(torch.arange(0, 1000, 1000 // 64)[:64])  # 64 images, about 6 per class
    mean, std = data.channel_stats()
    loader = BatchLoader(data, 64, device=CPU, mean=mean, std=std, shuffle=True)
    model = create_model("resnet20")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for epoch in range(150):
        stats = train_epoch(model, loader.epoch(epoch), optimizer, criterion=torch.nn.CrossEntropyLoss(),
                            scaler=scaler, amp_dtype=None, tally=EpochTally(), after_step=lambda: None)
        if stats.accuracy == 1.0 and predict_batches(model, loader.epoch()).accuracy == 1.0:
            break
    assert predict_batches(model, BatchLoader(data, 64, device=CPU, mean=mean, std=std).epoch()).accuracy == 1.0


def test_resume_continues_exactly_where_it_stopped(tmp_path) -> None:
    settings = {"ema": True, "ema_decay": 0.9, "val_split": 100, "batch_size": 20, "schedule": "onecycle"}
    straight = train(_config(tmp_path / "straight", **settings), quiet=True)
    halves = train(_config(tmp_path / "halves", **settings), quiet=True, stop_after=1)
    assert len(_rows(halves)) == 1
    train(resume=halves, quiet=True)

    a, b = load_file(straight / "model.safetensors"), load_file(halves / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state_a, state_b = load_checkpoint(straight / "last.pt"), load_checkpoint(halves / "last.pt")
    assert all(torch.equal(state_a["model"][k], state_b["model"][k]) for k in state_a["model"])
    assert state_a["scheduler"] == state_b["scheduler"] and state_b["scheduler"]["last_epoch"] == 10  # 5 steps an epoch
    assert state_a["ema"]["updates"] == state_b["ema"]["updates"] == 10
    rows_a, rows_b = _rows(straight), _rows(halves)
    assert [r["epoch"] for r in rows_b] == ["1", "2"]
    for a, b in zip(rows_a, rows_b):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "lr"):
            assert a[key] == b[key]


def test_a_run_with_mixup_and_cutmix_trains_and_resumes_exactly(tmp_path) -> None:
    settings = {"mixup": 0.2, "cutmix": 1.0, "batch_size": 20, "epochs": 2}
    straight = train(_config(tmp_path / "straight", **settings), quiet=True)
    halves = train(_config(tmp_path / "halves", **settings), quiet=True, stop_after=1)
    train(resume=halves, quiet=True)
    a, b = load_file(straight / "model.safetensors"), load_file(halves / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(_config(tmp_path / "plain", batch_size=20, epochs=2), quiet=True)
    c = load_file(plain / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the mixing changed what was learnt
    for row in _rows(straight):
        assert 0.0 <= float(row["train_acc"]) <= 1.0 and float(row["train_loss"]) > 0


@pytest.mark.parametrize("name,options", [("preact-resnet18", {}), ("wrn-10-2", {"dropout": 0.3, "se": True}),
                                          ("resnext29-2x16d", {}), ("seresnet18", {}), ("resnet9", {})])
def test_every_family_trains_resumes_exactly_and_evaluates(tmp_path, name: str, options: dict) -> None:
    """Dropout draws random numbers in every step: a resumed Wide ResNet must draw the same ones."""
    settings = {"model": name, "model_options": options, "epochs": 2, "batch_size": 40}
    straight = train(_config(tmp_path / "straight", **settings), quiet=True)
    halves = train(_config(tmp_path / "halves", **settings), quiet=True, stop_after=1)
    train(resume=halves, quiet=True)
    a, b = load_file(straight / "model.safetensors"), load_file(halves / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = _rows(straight)
    assert all(torch.isfinite(torch.tensor(float(row["train_loss"]))) for row in rows)
    info = json.loads((straight / "model.json").read_text())
    assert info["model"] == name and all(info["model_options"][key] == value for key, value in options.items())
    assert evaluate(straight)["correct"] == round(float(rows[-1]["test_acc"]) * 100)


def test_airbench_ingredients_train_resume_exactly_and_report_tta_at_the_end(tmp_path) -> None:
    """Alternating flips, reflected translation, fixed BatchNorm scales, a scaled bias learning rate and the
    flip-translate TTA of the last epoch, which eval reproduces."""
    settings = {"flip": "alternate", "pad_mode": "reflect", "crop_padding": 2, "train_norm_scale": False,
                "bias_lr_scale": 64.0, "weight_decay": 5e-3, "tta": "flip-translate", "epochs": 2, "batch_size": 40,
                "lr": 0.01, "model": "resnet9"}
    straight = train(_config(tmp_path / "straight", **settings), quiet=True)
    halves = train(_config(tmp_path / "halves", **settings), quiet=True, stop_after=1)
    train(resume=halves, quiet=True)
    a, b = load_file(straight / "model.safetensors"), load_file(halves / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    scales = [key for key in a if key.endswith("bn.weight") or key.endswith("bn1.weight")]
    assert scales and all(torch.equal(a[key], torch.ones_like(a[key])) for key in scales)
    assert any(not torch.equal(a[key.replace("weight", "bias")], torch.zeros_like(a[key])) for key in scales)
    rows = _rows(straight)
    assert rows[0]["test_tta_acc"] == "" and rows[1]["test_tta_acc"] != ""
    assert evaluate(straight, tta="flip-translate")["correct"] == round(float(rows[-1]["test_tta_acc"]) * 100)


def test_the_tally_counts_images_not_class_probabilities() -> None:
    tally = EpochTally()
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    tally.add(torch.tensor(1.5), logits, torch.tensor([[0.8, 0.2, 0.0], [0.6, 0.0, 0.4]]))
    assert tally.seen == 2 and tally.accuracy == 0.5 and tally.loss == pytest.approx(1.5)


def test_metrics_keep_the_wall_clock_with_saving_beside_the_compute_clock(tmp_path) -> None:
    rows = [{k: float(v) for k, v in row.items() if v} for row in _rows(train(_config(tmp_path / "r", epochs=3),
                                                                              quiet=True))]
    walls = [row["wall_seconds"] for row in rows]
    assert walls == sorted(walls) and all(r["wall_seconds"] >= r["elapsed_seconds"] > 0 for r in rows)
    # Epochs 2 and 3 also count the saving of the epochs before them (checkpoint, weights, CSV, curves).
    assert walls[2] - walls[0] > rows[2]["elapsed_seconds"] - rows[0]["elapsed_seconds"]


def test_a_run_saved_with_an_empty_scaler_resumes_with_an_active_one(tmp_path) -> None:
    """bf16 and float32 runs save their disabled gradient scaler empty; an fp16 continuation must accept that."""
    folder = train(_config(tmp_path / "run"), quiet=True, stop_after=1)
    state = load_checkpoint(folder / "last.pt")
    assert state["scaler"] == {}
    run = Run(TrainConfig.from_dict(state["config"]), folder, StopRequests(), quiet=True)
    run.parts.scaler = torch.amp.GradScaler("cpu", enabled=True)  # stands in for an fp16 run on a GPU
    run.state.load_state_dict(state)
    assert run.parts.scaler.is_enabled() and run.state.epoch == 1


def test_eval_reproduces_the_last_epoch_to_the_image(tmp_path) -> None:
    folder = train(_config(tmp_path / "run", epochs=2), quiet=True)
    last = _rows(folder)[-1]
    results = evaluate(folder)
    assert results["correct"] == round(float(last["test_acc"]) * 100)
    assert results["loss"] == pytest.approx(float(last["test_loss"]), rel=1e-5)
    for name in ("eval.json", "confusion.png", "predictions.png", "mistakes.png"):
        assert (folder / name).stat().st_size > 0


def test_validation_split_chooses_best_and_without_it_only_last_is_kept(tmp_path) -> None:
    with_val = train(_config(tmp_path / "val", epochs=2, val_split=100), quiet=True)
    assert (with_val / "best.pt").exists()
    best = load_checkpoint(with_val / "best.pt")
    assert best["best_val_acc"] == max(float(r["val_acc"]) for r in _rows(with_val))
    without = train(_config(tmp_path / "noval", epochs=1), quiet=True)
    assert not (without / "best.pt").exists() and (without / "last.pt").exists()
    assert _rows(without)[0]["val_acc"] == ""


def test_normalisation_comes_from_the_training_data_and_is_saved(tmp_path) -> None:
    folder = train(_config(tmp_path / "run", epochs=1), quiet=True)
    info = json.loads((folder / "model.json").read_text())
    mean, std = load_dataset("folder", "train", TINY["data_dir"], image_size=(16, 16)).channel_stats()
    assert info["mean"] == mean and info["std"] == std
    assert info["class_names"][0] == "airplane" and info["input_size"] == [3, 16, 16]
    assert info["model_options"] == {"zero_pad": "split"} and info["format_version"] == 2  # the layout, recorded


def test_second_run_into_the_same_folder_is_refused(tmp_path) -> None:
    train(_config(tmp_path / "run", epochs=1), quiet=True)
    with pytest.raises(ResnetCifarError, match="already holds a run"):
        train(_config(tmp_path / "run", epochs=1), quiet=True)


def test_plateau_watches_the_validation_loss_and_cuts_the_learning_rate_when_it_stalls(tmp_path) -> None:
    # Only a relative fall of 99% counts as better: the first epoch sets the best loss, the second cannot beat it,
    # and with patience 0 the learning rate falls tenfold at once.
    folder = train(_config(tmp_path / "adam", epochs=3, val_split=100, optimizer="adam", lr=1e-3, schedule="plateau",
                           augment=False, label_smoothing=0.0, weight_decay=0.0, patience=0, plateau_threshold=0.99),
                   quiet=True)
    rows = _rows(folder)
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3, 1e-4, 1e-5])
    state = load_checkpoint(folder / "last.pt")["scheduler"]
    assert state["best"] == pytest.approx(float(rows[0]["val_loss"]))  # steered by validation, not test, loss


def test_unknown_model_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ResnetCifarError, match="unknown model"):
        train(_config(tmp_path / "x", model="resnet19"), quiet=True)


def test_sync_bn_in_one_process_trains_plain_batchnorm_and_says_so(tmp_path, capsys) -> None:
    config = TrainConfig(model="resnet20", dataset="cifar10-sample", train_subset=100, epochs=1, batch_size=50,
                         device="cpu", sync_bn=True, out=str(tmp_path / "run"))
    folder = train(config, quiet=False)
    assert "--sync-bn has nothing to synchronise in one process" in capsys.readouterr().err
    assert load_checkpoint(folder / "last.pt")["model"].keys() == create_model("resnet20").state_dict().keys()
