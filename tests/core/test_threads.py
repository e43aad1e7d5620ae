"""CPU threads: --threads wins, OMP_NUM_THREADS is respected, and otherwise never more than the usable CPUs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from resnet_cifar.cli import main
from resnet_cifar.core import threads
from resnet_cifar.errors import ResnetCifarError


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_requested_threads_win(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    assert threads.configure_threads(3) == 3 == torch.get_num_threads()


def test_more_threads_than_usable_cpus_are_capped_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    assert threads.configure_threads(10000) == 2 == torch.get_num_threads()  # 10,000 threads hung a batch (#34)
    err = capsys.readouterr().err
    assert "--threads 10000 is more than the 2 CPUs this process may use" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("bad", [0, -2, True])
def test_a_thread_count_below_one_is_a_one_line_error(bad) -> None:
    with pytest.raises(ResnetCifarError, match="--threads must be a positive integer"):
        threads.configure_threads(bad)


def test_default_is_capped_at_the_cpus_this_process_may_use(monkeypatch) -> None:
    """As in a container whose CPU quota is smaller than the machine: torch's default would oversubscribe."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    torch.set_num_threads(6)
    assert threads.configure_threads() == 2 == torch.get_num_threads()
    torch.set_num_threads(1)  # fewer than the CPUs: left alone, never raised
    assert threads.configure_threads() == 1


def test_omp_num_threads_is_left_as_torch_read_it(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    torch.set_num_threads(6)
    assert threads.configure_threads() == 6


def test_usable_cpus_reads_the_limits_of_this_process(monkeypatch) -> None:
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert threads.usable_cpus() == 1
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT")
    assert 1 <= threads.usable_cpus() <= len(os.sched_getaffinity(0))


def test_the_command_line_caps_threads_and_records_them_in_the_run(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")  # one usable CPU, whatever this machine has
    capped = run_cli("train", "--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", "1",
                     "--train-subset", "64", "--batch-size", "32", "--device", "cpu", "--quiet",
                     "--out", str(tmp_path / "capped"))
    assert capped.returncode == 0, capped.stderr
    assert json.loads((tmp_path / "capped" / "config.json").read_text())["environment"]["cpu_threads"] == 1
    bad = run_cli("train", "--threads", "0", "--dataset", "cifar10-sample", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.strip() == "resnet-cifar: error: --threads must be a positive " \
        "integer, got 0"
    assert not (tmp_path / "bad").exists()


def test_a_resumed_run_takes_the_thread_count_it_was_saved_with_unless_one_was_chosen(monkeypatch) -> None:
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "_chosen", False)
    threads.follow_saved_threads(1)
    assert torch.get_num_threads() == 1
    threads.follow_saved_threads(8)  # saved on a larger machine: capped at the usable CPUs
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "_chosen", True)  # --threads or OMP_NUM_THREADS
    threads.follow_saved_threads(1)
    assert torch.get_num_threads() == 2


def test_resume_refuses_settings_it_would_ignore_and_keeps_the_thread_count(run_cli, tmp_path: Path, monkeypatch,
                                                                            capsys) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    folder = tmp_path / "run"
    started = run_cli("train", "--model", "resnet20", "--dataset", "cifar10-sample", "--epochs", "2",
                      "--train-subset", "64", "--batch-size", "32", "--device", "cpu", "--quiet", "--threads", "1",
                      "--stop-after", "1", "--out", str(folder))
    assert started.returncode == 0, started.stderr
    monkeypatch.setattr(threads, "_chosen", threads._chosen)  # main() below sets it; restored after the test
    assert main(["train", "--resume", str(folder), "--epochs", "5", "--model", "resnet56", "--overwrite"]) == 2
    refused = capsys.readouterr().err
    assert "would be ignored" in refused and all(option in refused for option in ("--epochs", "--model", "--overwrite"))
    assert len(refused.strip().splitlines()) == 1
    resumed = run_cli("train", "--resume", str(folder), "--device", "cpu", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "using the 1 CPU threads this run was saved with" in resumed.stderr or os.cpu_count() == 1
    assert json.loads((folder / "config.json").read_text())["environment"]["cpu_threads"] == 1
