"""Faults: killed, interrupted or poisoned runs resume to exactly the weights of an uninterrupted run."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnet_cifar import ResnetCifarError, TrainConfig, train
from resnet_cifar.core.checkpoint import load_checkpoint
from resnet_cifar.training.runfolder import RunLock

# 200 training images (16x16, conftest.sample_folder) in batches of 20: 10 steps an epoch, 20 in all; a checkpoint
# every 3 steps.
ARGS = ["--model", "resnet20", "--dataset", "folder", "--image-size", "16", "--epochs", "2", "--batch-size", "20",
        "--lr", "0.05",
        "--checkpoint-every", "3", "--deterministic", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def run_args(sample_folder) -> list[str]:
    """``ARGS`` with the folder of images."""
    return [*ARGS, "--data-dir", str(sample_folder)]


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "resnet_cifar", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out + err


def _wait_for_new_checkpoint(path: Path, process: subprocess.Popen, after: float) -> None:
    deadline = time.time() + 300
    while not (path.exists() and path.stat().st_mtime > after):
        assert process.poll() is None and time.time() < deadline, "training ended before writing a checkpoint"
        time.sleep(0.05)


def _metrics(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _assert_same_result(run: Path, reference: Path) -> None:
    a, b = load_file(reference / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "weights differ from the reference"
    rows, ref_rows = _metrics(run), _metrics(reference)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row, ref in zip(rows, ref_rows):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert row[key] == ref[key], key
    assert not list(run.glob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, run_args) -> Path:
    folder = tmp_path_factory.mktemp("reference") / "run"
    code, output = _finish(_start(*run_args, "--out", str(folder)))
    assert code == 0, output
    return folder


def test_kills_during_epochs_and_checkpoint_writes_lose_nothing(reference, tmp_path, run_args) -> None:
    folder = tmp_path / "run"
    code, output = _finish(_start(*run_args, "--out", str(folder), env={"RESNET_CIFAR_FAULT_KILL_AT_BATCH": "14"}))
    assert code == -signal.SIGKILL, output
    assert load_checkpoint(folder / "last.pt")["tally"]["batches"] == 2  # step 12: epoch 2, batch 2

    # Dies half-way through the first write of last.pt after resuming (step 15).
    code, output = _finish(_start("--resume", str(folder), "--quiet",
                                  env={"RESNET_CIFAR_FAULT_KILL_IN_WRITE": "last.pt:1"}))
    assert code == -signal.SIGKILL, output
    assert list(folder.glob(".last.pt.*.tmp"))  # the half-written file, beside the intact last.pt
    assert load_checkpoint(folder / "last.pt")["tally"]["batches"] == 2

    # A real SIGKILL from outside, right after a mid-epoch checkpoint.
    process = _start("--resume", str(folder), "--quiet")
    _wait_for_new_checkpoint(folder / "last.pt", process, (folder / "last.pt").stat().st_mtime)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    _finish(process)

    code, output = _finish(_start("--resume", str(folder), "--quiet"))
    assert code == 0, output
    _assert_same_result(folder, reference)


def test_ctrl_c_and_sigterm_save_a_checkpoint_and_say_how_to_resume(reference, tmp_path, run_args) -> None:
    folder = tmp_path / "run"
    process = _start(*run_args, "--out", str(folder))
    for signum in (signal.SIGINT, signal.SIGTERM):
        _wait_for_new_checkpoint(folder / "last.pt", process, (folder / "last.pt").stat().st_mtime
                                 if (folder / "last.pt").exists() else 0)
        process.send_signal(signum)
        code, output = _finish(process)
        assert code == 128 + signum, output
        assert f"continue with: resnet-cifar train --resume {folder}" in output and "Traceback" not in output
        process = _start("--resume", str(folder), "--quiet")
    code, output = _finish(process)
    assert code == 0, output
    _assert_same_result(folder, reference)


def _config(out: Path, **settings) -> TrainConfig:
    return TrainConfig(**{"model": "resnet20", "dataset": "cifar10-sample", "epochs": 1, "batch_size": 100,
                          "lr": 0.05, "device": "cpu", "out": str(out), "checkpoint_every": 4, **settings})


def test_nonfinite_loss_stops_naming_the_step_and_the_last_checkpoint(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESNET_CIFAR_FAULT_NAN_AT_BATCH", "6")
    with pytest.raises(ResnetCifarError) as info:
        train(_config(tmp_path / "run"), quiet=True)
    message = str(info.value)
    assert "NaN or infinite at batch 6 of epoch 1 (step 6)" in message
    assert f"last good checkpoint is {tmp_path / 'run' / 'last.pt'}" in message
    assert load_checkpoint(tmp_path / "run" / "last.pt")["tally"]["batches"] == 4


def test_skip_nonfinite_skips_the_batch_and_reports_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESNET_CIFAR_FAULT_NAN_AT_BATCH", "3")
    folder = train(_config(tmp_path / "run", skip_nonfinite=True), quiet=True)
    row = _metrics(folder)[0]
    assert row["skipped_batches"] == "1" and float(row["train_loss"]) == float(row["train_loss"])  # not NaN
    assert all(torch.isfinite(t).all() for t in load_file(folder / "model.safetensors").values())


def test_a_second_process_cannot_train_into_a_locked_folder(tmp_path, run_args) -> None:
    folder = tmp_path / "run"
    with RunLock(folder):
        code, output = _finish(_start(*run_args, "--out", str(folder)))
    assert code == 2 and f"another process is training into {folder}" in output


def test_overwrite_replaces_a_finished_run(tmp_path) -> None:
    folder = train(_config(tmp_path / "run", val_split=500), quiet=True)
    assert (folder / "best.pt").exists()
    with pytest.raises(ResnetCifarError, match="already holds a run"):
        train(_config(folder), quiet=True)
    train(_config(folder), quiet=True, overwrite=True)
    assert not (folder / "best.pt").exists() and len(_metrics(folder)) == 1


def test_deterministic_cpu_runs_are_bit_identical(tmp_path) -> None:
    first = train(_config(tmp_path / "a", deterministic=True, val_split=500), quiet=True)
    second = train(_config(tmp_path / "b", deterministic=True, val_split=500), quiet=True)
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
