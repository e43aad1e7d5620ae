"""Runs that fail, die or diverge lose nothing and leave no dead end (issue 14, items 1-5)."""
from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from resnet_cifar import ResnetCifarError
from resnet_cifar.core.checkpoint import load_checkpoint
from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.runfolder import SET_ASIDE, RunLock, SetAside
from resnet_cifar.training.trainer import train

# Runs here test mechanics, not learning: 16x16 images of a small ImageFolder tree (conftest.sample_folder),
# 200 for training and 100 for testing.
TINY: dict = {"dataset": "folder", "image_size": 16}


@pytest.fixture(autouse=True, scope="module")
def _tiny_data(sample_folder) -> None:
    TINY["data_dir"] = str(sample_folder)


def _config(out, **settings) -> TrainConfig:
    values = {"model": "resnet20", **TINY, "epochs": 1, "batch_size": 50, "lr": 0.05, "device": "cpu",
              "out": str(out), **settings}
    return TrainConfig(**values)


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def _rows(folder) -> list[dict]:
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return train(_config(tmp_path_factory.mktemp("old") / "run"), quiet=True)


@pytest.mark.parametrize("bad", [{"dataset": "cifar10", "data_dir": "/nonexistent", "download": False},
                                 {"batch_size": 5000}])
def test_overwrite_that_fails_keeps_the_old_run(finished_run, tmp_path, bad) -> None:
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    before = _files(folder)
    with pytest.raises(ResnetCifarError):
        train(_config(folder, **bad), quiet=True, overwrite=True)
    assert _files(folder) == before and not (folder / SET_ASIDE).exists()


def test_overwrite_that_succeeds_replaces_every_file_of_the_old_run(finished_run, tmp_path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    (folder / "notes.txt").write_text("mine")
    train(_config(folder, epochs=2), quiet=True, overwrite=True)
    assert [row["epoch"] for row in _rows(folder)] == ["1", "2"] and load_checkpoint(folder / "last.pt")["epoch"] == 2
    assert (folder / "notes.txt").read_text() == "mine" and not (folder / SET_ASIDE).exists()


def test_a_process_killed_while_replacing_a_run_gets_it_back_at_the_next_start(finished_run, tmp_path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    before = _files(folder)
    SetAside.move(folder)  # what --overwrite does first; then the process dies before a checkpoint
    (folder / "config.json").write_text("{}")  # the new run's first file
    with RunLock(folder):
        assert _files(folder) == before


def test_a_run_that_died_before_its_first_checkpoint_can_be_run_again_or_resumed(tmp_path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(ResnetCifarError, match="no batch"):
        train(_config(folder, batch_size=5000), quiet=True)  # fails in the first epoch
    assert (folder / "config.json").exists() and not (folder / "last.pt").exists()
    train(_config(folder, batch_size=100), quiet=True)  # the command again (fixed): not refused

    assert load_checkpoint(folder / "last.pt")["epoch"] == 1
    (folder / "last.pt").unlink()  # as if it had died before saving: --resume starts it again from config.json
    train(resume=folder, quiet=True)
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1 and len(_rows(folder)) == 1


def test_a_failed_first_run_leaves_no_folder_behind(tmp_path) -> None:
    with pytest.raises(ResnetCifarError):
        train(_config(tmp_path / "new", batch_size=5000), quiet=True)
    assert not (tmp_path / "new").exists()


def test_resuming_a_finished_run_repairs_exports_left_behind_by_a_kill(tmp_path) -> None:
    folder = train(_config(tmp_path / "run", epochs=2), quiet=True, stop_after=1)
    epoch1 = {name: (folder / name).read_bytes() for name in ("model.safetensors", "metrics.csv")}
    train(resume=folder, quiet=True)
    final = {key: value.clone() for key, value in load_file(folder / "model.safetensors").items()}  # not mapped
    for name, content in epoch1.items():  # a kill during epoch 2's save, after last.pt was written
        (folder / name).write_bytes(content)
    train(resume=folder, quiet=True)
    assert [row["epoch"] for row in _rows(folder)] == ["1", "2"]
    repaired = load_file(folder / "model.safetensors")
    assert all(torch.equal(final[key], repaired[key]) for key in final)
    assert json.loads((folder / "model.json").read_text())["epochs_trained"] == 2


def test_a_checkpoint_of_an_ema_run_is_evaluated_with_the_averaged_weights(tmp_path) -> None:
    folder = train(_config(tmp_path / "run", ema=True, ema_decay=0.9), quiet=True)
    from_folder = evaluate(folder, out_dir=tmp_path / "a")
    from_checkpoint = evaluate(folder / "last.pt", out_dir=tmp_path / "b")
    assert from_checkpoint["accuracy"] == from_folder["accuracy"]
    assert from_checkpoint["loss"] == pytest.approx(from_folder["loss"], rel=1e-6)


def test_a_diverged_run_writes_no_non_finite_weights(tmp_path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(ResnetCifarError, match="diverged"):
        train(_config(folder, epochs=2, lr=1e6, skip_nonfinite=True), quiet=True)
    for name in ("last.pt",):
        if (folder / name).exists():
            state = load_checkpoint(folder / name)
            assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    if (folder / "model.safetensors").exists():
        weights = load_file(folder / "model.safetensors")
        assert all(math.isfinite(v.float().abs().max()) for v in weights.values() if v.is_floating_point())


def test_resume_refuses_another_runs_checkpoint_and_changes_nothing(finished_run, tmp_path) -> None:
    other = train(_config(tmp_path / "other", model="resnet32", lr=0.01), quiet=True)
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    shutil.copy(other / "last.pt", folder / "last.pt")  # a resnet32 run's checkpoint over a resnet20 run
    before = _files(folder)
    with pytest.raises(ResnetCifarError, match=r"another run.s checkpoint .*lr 0.01 against 0.05, model .resnet32. "
                                               r"against .resnet20."):
        train(resume=folder, quiet=True)
    assert _files(folder) == before

