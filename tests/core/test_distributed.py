"""DistributedDataParallel on the CPU: 2 gloo processes started by torchrun, compared with one process.

The runs are in float64 (tests/core/ddp_worker.py) so that one process and two agree to rounding: in
float32 a different summation order flips a few ReLUs near zero and the runs drift apart by ~1e-4.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_cifar.core.checkpoint import load_checkpoint
from resnet_cifar.core.distributed import AllReduceBatchNorm2d, convert_sync_batchnorm
from resnet_cifar.models import create_model

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TIGHT = {"rtol": 1e-7, "atol": 1e-10}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _torchrun(processes: int, *args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                 *args])


def _saved(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_close(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], **tolerance: float) -> None:
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], msg=key, **tolerance)


# Runs here test mechanics, not learning: 16x16 images of a small ImageFolder tree (conftest.sample_folder).
def _tiny(folder: Path) -> list[str]:
    return ["--dataset", "folder", "--data-dir", str(folder), "--image-size", "16"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, sample_folder) -> Path:
    """One process, batch 64, two epochs of 2 steps."""
    out = tmp_path_factory.mktemp("single")
    _run([sys.executable, str(WORKER), "ranks", str(out), "--data-dir", str(sample_folder)])
    return out / "plain"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, sample_folder) -> Path:
    """The same with two processes of 32 images each, with (sync/) and without (plain/) synchronised BatchNorm."""
    out = tmp_path_factory.mktemp("two")
    _torchrun(2, str(WORKER), "ranks", str(out), "--sync-bn", "--data-dir", str(sample_folder))
    return out


def test_ranks_hold_identical_weights_and_sync_bn_matches_one_process(single, two_ranks) -> None:
    rank0, rank1 = _saved(two_ranks / "sync" / "rank0.pt"), _saved(two_ranks / "sync" / "rank1.pt")
    _assert_close(rank1["weights"], rank0["weights"], rtol=0, atol=0)
    # 2 processes x 32 images with synchronised BatchNorm = 1 process x 64 images (the same images in order).
    reference = _saved(single / "rank0.pt")
    _assert_close(rank0["weights"], reference["weights"], **TIGHT)
    for row, expected in zip(rank0["rows"], reference["rows"], strict=True):
        for metric in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert row[metric] == pytest.approx(expected[metric], rel=1e-6), metric


def test_without_sync_bn_each_rank_normalises_its_own_half(single, two_ranks) -> None:
    rank0 = _saved(two_ranks / "plain" / "rank0.pt")["weights"]
    # The parameters agree; the BatchNorm running statistics are each rank's own (rank 0's are saved).
    parameters = {k: v for k, v in rank0.items() if "running" not in k and "num_batches" not in k}
    rank1 = _saved(two_ranks / "plain" / "rank1.pt")["weights"]
    _assert_close({k: rank1[k] for k in parameters}, parameters, rtol=0, atol=0)
    reference = _saved(single / "rank0.pt")["weights"]
    assert max((rank0[k] - v).abs().max().item() for k, v in reference.items() if v.is_floating_point()) > 1e-4


def test_a_checkpoint_of_two_processes_resumes_in_one(single, tmp_path, sample_folder) -> None:
    _torchrun(2, str(WORKER), "train", str(tmp_path), "--sync-bn", "--stop-after", "1", "--data-dir",
              str(sample_folder))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    _run([sys.executable, str(WORKER), "resume", str(tmp_path)])
    finished = load_checkpoint(tmp_path / "last.pt")
    reference = _saved(single / "rank0.pt")
    assert [row["epoch"] for row in finished["history"]] == [1, 2]
    assert finished["history"][1]["train_loss"] == pytest.approx(reference["rows"][1]["train_loss"], rel=1e-6)
    _assert_close(finished["model"], reference["weights"], **TIGHT)


def test_torchrun_command_line_prints_and_writes_once(tmp_path, sample_folder) -> None:
    done = _torchrun(2, "-m", "resnet_cifar", "train", "--model", "resnet20", *_tiny(sample_folder),
                     "--train-subset", "128", "--batch-size", "64", "--epochs", "1", "--device", "cpu",
                     "--out", str(tmp_path / "run"))
    assert done.stdout.count("run folder:") == 1 and done.stdout.count("epoch 1/1  train loss") == 1
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"processes": 2' in config and (tmp_path / "run" / "model.safetensors").is_file()


def test_an_experiment_under_torchrun_trains_every_run_in_one_process_group(tmp_path, sample_folder) -> None:
    # Joining a new process group for the second run used to hang; the table is printed once.
    done = _torchrun(2, "-m", "resnet_cifar", "experiment", "compare", "resnet20", "lenet5", "--dataset", "folder",
                     "--data-dir", str(sample_folder), "--train-subset", "128", "--batch-size", "64", "--epochs", "1",
                     "--device", "cpu", "--out", str(tmp_path / "cmp"))
    assert done.stdout.count("[2/2] lenet5") == 1 and done.stdout.count("| lenet5 ") == 1
    for name in ("resnet20", "lenet5"):
        assert '"processes": 2' in (tmp_path / "cmp" / name / "config.json").read_text()


def test_all_reduce_batchnorm_alone_is_plain_batchnorm() -> None:
    model = create_model("resnet20")
    synced = convert_sync_batchnorm(create_model("resnet20"), torch.device("cpu"))
    synced.load_state_dict(model.state_dict())
    assert sum(isinstance(m, AllReduceBatchNorm2d) for m in synced.modules()) == 19
    x = torch.randn(8, 3, 32, 32)
    torch.testing.assert_close(synced.train()(x), model.train()(x))
    torch.testing.assert_close(synced.state_dict(), model.state_dict())


def test_sigterm_to_torchrun_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path, sample_folder) -> None:
    folder = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "resnet_cifar", "train", "--model", "resnet20", *_tiny(sample_folder), "--epochs", "3",
               "--batch-size", "4", "--checkpoint-every", "7", "--device", "cpu", "--quiet", "--out", str(folder)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (folder / "last.pt").exists():  # the first checkpoint: every rank is training
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0 and "stopped by SIGTERM" in err, err[-3000:]
    state = load_checkpoint(folder / "last.pt")
    step = state["epoch"] * 50 + (state["tally"]["batches"] if state["tally"] else 0)
    assert step % 20 == 0 or state["tally"] is None, step  # where the ranks compare notes, or an epoch end
    resumed = subprocess.run([sys.executable, "-m", "resnet_cifar", "train", "--resume", str(folder), "--quiet"],
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["epoch"] for row in load_checkpoint(folder / "last.pt")["history"]] == [1, 2, 3]
