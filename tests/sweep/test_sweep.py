"""resnet-cifar sweep end to end on tiny runs: trials as run folders, pruning, shared studies, continuing a killed
sweep, the report and the command that reproduces the best trial."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_cifar.cli import _config_from_args, build_parser, main
from resnet_cifar.sweep.runner import SweepPlan, run_sweep
from resnet_cifar.sweep.space import parse_space
from resnet_cifar.sweep.study import open_study
from resnet_cifar.training.callbacks import read_metrics_csv
from resnet_cifar.training.config import TrainConfig

optuna = pytest.importorskip("optuna", reason="the sweep needs the sweep extra")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_options(sample_folder) -> list[str]:
    """Tiny runs: ResNet-20 on 150 16x16 images, 50 held out for validation."""
    return ["--model", "resnet20", "--dataset", "folder", "--data-dir", str(sample_folder), "--image-size", "16",
            "--batch-size", "50", "--val-split", "50", "--device", "cpu", "--no-download"]


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text("lr: {low: 0.01, high: 0.2, log: true}\nlabel_smoothing: {choices: [0.0, 0.1]}\n")
    return path


def _trials(storage: str, name: str) -> list:
    return open_study(name, storage, create=False).get_trials(deepcopy=False)


def _sweep_process(out: Path, space: Path, train_options: list[str], *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "resnet_cifar", "sweep", "--study", "s", "--out", str(out), "--space",
               str(space), *train_options, *extra]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_each_trial_is_a_run_folder_and_the_report_reproduces_the_best(tmp_path, space, train_options,
                                                                       capsys) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--trials", "3", "--pruner",
                 "none", "--sampler-seed", "0", "--epochs", "2", *train_options])
    printed = capsys.readouterr().out
    assert code == 0
    trials = _trials(str(out / "optuna.journal"), "s")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:
        rows = read_metrics_csv(out / f"trial-{trial.number}")
        assert [row["epoch"] for row in rows] == ["1", "2"]
        assert trial.value == pytest.approx(float(rows[-1]["val_acc"]))  # chosen on validation images
        saved = json.loads((out / f"trial-{trial.number}" / "config.json").read_text())
        assert saved["lr"] == trial.params["lr"] and saved["label_smoothing"] == trial.params["label_smoothing"]
    assert "reproduce it with:" in printed

    assert main(["sweep", "--report", "s", "--out", str(out)]) == 0
    report = json.loads((out / "sweep.json").read_text())
    for name in ("sweep.md", "history.png", "importances.png", "minutes.png"):
        assert (out / name).stat().st_size > 0
    best = max(trials, key=lambda t: t.value)
    assert report["best"]["number"] == best.number and len(report["trials"]) == 3
    command = shlex.split(report["best"]["command"])
    assert command[:2] == ["resnet-cifar", "train"]
    again = _config_from_args(build_parser().parse_args(command[1:])).to_dict()
    saved = json.loads((out / f"trial-{best.number}" / "config.json").read_text())
    assert {k: v for k, v in again.items() if k != "out"} == \
        {k: v for k, v in saved.items() if k not in ("out", "environment", "processes")}


def test_pruning_stops_a_hopeless_trial_early(tmp_path, sample_folder) -> None:
    """Two trials at a good learning rate, then one at a rate that wrecks training: pruned after epoch 2."""
    study = open_study("p", str(tmp_path / "journal"), pruner="median", startup_trials=2)
    for lr in (0.05, 0.05, 50.0):
        study.enqueue_trial({"lr": lr})
    base = TrainConfig(model="resnet20", dataset="folder", data_dir=str(sample_folder), image_size=16, batch_size=50,
                       val_split=50, device="cpu", epochs=5, label_smoothing=0.0)
    plan = SweepPlan(study, tmp_path / "sweep", base, parse_space({"lr": {"low": 1e-3, "high": 100, "log": True}}),
                     trials=3)
    run_sweep(plan)
    good, again, hopeless = study.get_trials(deepcopy=False)
    assert good.state.name == again.state.name == "COMPLETE" and hopeless.state.name == "PRUNED"
    # Steps are per mille of the 5-epoch schedule; the pruner waits for a quarter of it (epoch 2, step 400).
    assert len(read_metrics_csv(tmp_path / "sweep" / "trial-2")) == 2
    assert sorted(good.intermediate_values) == [200, 400, 600, 800, 1000]
    assert hopeless.intermediate_values[400] < min(good.intermediate_values[400], again.intermediate_values[400])
    assert plan.finished == [0, 1, 2]


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_two_processes_share_a_study_and_run_no_trial_twice(tmp_path, space, train_options, storage,
                                                             request) -> None:
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else str(tmp_path / "shared.journal")
    out = tmp_path / "sweep"
    options = ["--trials", "4", "--storage", url, "--epochs", "2", "--pruner", "none"]
    processes = [_sweep_process(out, space, train_options, *options) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    finished = [line for stdout, _ in outputs for line in stdout.splitlines() if line.startswith("trial ")]
    numbers = sorted(int(line.split()[1].rstrip(":")) for line in finished)
    assert len(numbers) == len(set(numbers)) == 4  # every trial trained by exactly one process
    trials = _trials(url, "s")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.number for t in complete) == numbers
    for trial in complete:
        assert [row["epoch"] for row in read_metrics_csv(out / f"trial-{trial.number}")] == ["1", "2"]
    assert all(t.user_attrs.get("not_run") for t in trials if t.state.name == "FAIL")  # only trials never run


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_sweep_continues_its_trial_from_its_checkpoint(tmp_path, space, train_options, stop) -> None:
    out = tmp_path / "sweep"
    options = ["--trials", "2", "--epochs", "6", "--pruner", "none", "--batch-size", "10"]
    process = _sweep_process(out, space, train_options, *options)
    deadline = time.monotonic() + 300
    while not (out / "trial-0" / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    if stop == signal.SIGINT:
        assert process.returncode == 130 and "run the same command to continue it" in stderr
    done_before = len(read_metrics_csv(out / "trial-0"))
    assert done_before < 6
    assert [t.state.name for t in _trials(str(out / "optuna.journal"), "s")] == ["RUNNING"]

    again = _sweep_process(out, space, train_options, *options)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert "trial 0 was left unfinished: continuing it" in stderr
    trials = _trials(str(out / "optuna.journal"), "s")
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE")]  # nothing counted twice
    rows = read_metrics_csv(out / "trial-0")
    assert [row["epoch"] for row in rows] == [str(e) for e in range(1, 7)]
    assert trials[0].value == pytest.approx(float(rows[-1]["val_acc"]))
    assert sorted(trials[0].intermediate_values) == [167, 333, 500, 667, 833, 1000]  # each epoch once


def test_sweep_option_errors_are_one_line(tmp_path, space, train_options, capsys) -> None:
    out = str(tmp_path / "sweep")
    at = train_options.index("--val-split")
    without_validation = train_options[:at] + train_options[at + 2:]
    cases = [
        (["--study", "s", "--out", out, "--space", str(space), *without_validation],
         "a sweep chooses on validation images, never the test split: give --val-split N"),
        (["--out", out, "--space", str(space), *train_options], "give --study NAME and --space FILE"),
        (["--study", "s", "--out", out, "--space", str(space), "--trials", "0", *train_options],
         "--trials must be a positive integer"),
        (["--study", "s", "--out", out, "--space", str(space), "--budget-minutes", "-1", *train_options],
         "--budget-minutes must be a positive number"),
        (["--report", "nothing", "--out", out], "no study 'nothing'"),
        (["--study", "s", "--storage", "postgresql://u:secret@127.0.0.1:1/db", "--space", str(space),
          *train_options], "cannot open the study database postgresql://u:***@127.0.0.1:1/db"),
    ]
    for args, fragment in cases:
        assert main(["sweep", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0] and "secret" not in err[0], err


def test_every_process_of_a_study_must_train_alike(tmp_path, space, train_options, capsys) -> None:
    out = str(tmp_path / "sweep")
    first = ["sweep", "--study", "s", "--out", out, "--space", str(space), "--trials", "1", "--epochs", "1"]
    assert main([*first, *train_options]) == 0
    assert main([*first, "--lr", "0.3", *train_options]) == 2
    assert "was started with train_settings" in capsys.readouterr().err


def test_a_space_whose_trials_cannot_train_stops_after_five_failures(tmp_path, train_options, capsys) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"warmup_epochs": {"low": 5, "high": 9}}))  # beyond the 2 epochs trained
    out = tmp_path / "sweep"
    assert main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--epochs", "2",
                 *train_options]) == 2
    err = capsys.readouterr().err
    assert "5 trials in a row failed, the last because its settings cannot train: --warmup-epochs must lie" in err
    trials = _trials(str(out / "optuna.journal"), "s")
    assert [t.state.name for t in trials] == ["FAIL"] * 5
    assert all("--warmup-epochs" in t.user_attrs["error"] for t in trials)
