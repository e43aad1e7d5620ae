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

from resnet_cifar.cli import build_parser, main
from resnet_cifar.cli.train import config_from_args
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
    again = config_from_args(build_parser().parse_args(command[1:])).to_dict()
    saved = json.loads((out / f"trial-{best.number}" / "config.json").read_text())
    assert {k: v for k, v in again.items() if k != "out"} == \
        {k: v for k, v in saved.items() if k not in ("out", "environment", "processes")}


@pytest.mark.parametrize("amp", ["auto", "off"])  # off: float32, as on a CPU without native bf16
def test_pruning_stops_a_hopeless_trial_early(tmp_path, sample_folder, amp) -> None:
    """Two trials at a good learning rate, then one at a rate that wrecks training: it never finishes. Pruned from a
    quarter of the schedule on (epoch 2), or, where it diverges first (float32 can), failed; a failed trial does not
    count towards the trials, so the sweep then runs one more."""
    study = open_study("p", str(tmp_path / "journal"), pruner="median", startup_trials=2)
    for lr in (0.05, 0.05, 50.0):
        study.enqueue_trial({"lr": lr})
    base = TrainConfig(model="resnet20", dataset="folder", data_dir=str(sample_folder), image_size=16, batch_size=50,
                       val_split=50, device="cpu", epochs=5, label_smoothing=0.0, amp=amp)
    plan = SweepPlan(study, tmp_path / "sweep", base, parse_space({"lr": {"low": 1e-3, "high": 0.1, "log": True}}),
                     trials=3)
    run_sweep(plan)
    good, again, hopeless, *more = study.get_trials(deepcopy=False)
    assert good.state.name == again.state.name == "COMPLETE" and hopeless.state.name in ("PRUNED", "FAIL")
    assert len(read_metrics_csv(tmp_path / "sweep" / "trial-2")) < 5  # fewer epochs than a full trial
    assert sorted(good.intermediate_values) == [200, 400, 600, 800, 1000]
    if hopeless.state.name == "PRUNED":  # steps are per mille of the schedule; the pruner waits for epoch 2 (400)
        assert max(hopeless.intermediate_values) >= 400 and not more
        assert hopeless.intermediate_values[max(hopeless.intermediate_values)] <= max(
            good.intermediate_values[max(hopeless.intermediate_values)],
            again.intermediate_values[max(hopeless.intermediate_values)])
    else:
        assert "NaN or infinite" in hopeless.user_attrs["error"]
        assert [t.state.name in ("COMPLETE", "PRUNED") for t in more] == [True]  # counted in its place
    assert plan.finished == list(range(3 + len(more)))


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
    space = tmp_path / "space.json"  # each value trains with the other options; together they never do
    space.write_text(json.dumps({"epochs": {"choices": [1]}, "warmup_epochs": {"low": 1.0, "high": 1.5}}))
    out = tmp_path / "sweep"
    assert main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--epochs", "2",
                 *train_options]) == 2
    err = capsys.readouterr().err
    assert "5 trials in a row failed, the last because its settings cannot train: --warmup-epochs must lie" in err
    trials = _trials(str(out / "optuna.journal"), "s")
    assert [t.state.name for t in trials] == ["FAIL"] * 5
    assert all("--warmup-epochs" in t.user_attrs["error"] for t in trials)


BAD_VALUES = [
    ({"optimizer": {"choices": ["sgd", "bogus"]}}, "optimizer 'bogus' cannot train: unknown optimizer 'bogus'"),
    ({"model": {"choices": ["notamodel"]}}, "model 'notamodel' cannot train: unknown model"),
    ({"epochs": {"low": 0, "high": 4}}, "epochs 0 cannot train: --epochs must be a positive integer"),
    ({"lr": {"low": -1, "high": 0.1}}, "lr -1.0 cannot train: --lr must be a positive number"),
    ({"seed": {"low": -3, "high": 4}}, "seed -3 cannot train: --seed must be an integer from 0"),
    ({"warmup_epochs": {"low": 1, "high": 9}}, "warmup_epochs 9.0 cannot train: --warmup-epochs must lie in [0, 2)"),
]


@pytest.mark.parametrize("entries,fragment", BAD_VALUES, ids=[fragment[:20] for _, fragment in BAD_VALUES])
def test_every_value_of_the_space_is_checked_before_the_first_trial(tmp_path, train_options, capsys, entries,
                                                                    fragment) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps(entries))
    out = tmp_path / "sweep"
    assert main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--epochs", "2",
                 *train_options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not out.exists()  # no study, no trial


@pytest.mark.parametrize("name", ["../../evil", "a/b", ".hidden", "-x", "", "a" * 129, "caf\u00e9"])
def test_a_study_name_is_one_safe_folder_name(tmp_path, space, train_options, capsys, name) -> None:
    for command in ([f"--study={name}", "--space", str(space), *train_options], [f"--report={name}"]):
        assert main(["sweep", *command]) == 2
        assert "a study name is letters, digits and - _ ." in capsys.readouterr().err
    assert not (REPO / "sweeps").exists() or not any((REPO / "sweeps").glob("*evil*"))


def _finished_study(tmp_path, space, train_options) -> Path:
    out = tmp_path / "sweep"
    assert main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--trials", "1", "--epochs", "1",
                 *train_options]) == 0
    return out


def test_a_journal_cut_mid_record_is_replayed_up_to_its_last_whole_record(tmp_path, space, train_options,
                                                                          capsys) -> None:
    out = _finished_study(tmp_path, space, train_options)
    journal = out / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 4, "worker_id": "x", "study_id": 0, "dat')  # a write cut off
    capsys.readouterr()
    assert main(["sweep", "--report", "s", "--out", str(out)]) == 0
    assert "ended in a record cut off mid-write" in capsys.readouterr().err
    assert journal.read_bytes() == whole  # later appends start on a line of their own
    assert main(["sweep", "--study", "s", "--out", str(out), "--space", str(space), "--trials", "2", "--epochs", "1",
                 *train_options]) == 0
    assert [t.state.name for t in _trials(str(journal), "s")] == ["COMPLETE", "COMPLETE"]


@pytest.mark.parametrize("damage,fragment", [
    (b"garbage, not json\n", "line {n} is not a JSON record"),
    (b'{"op_code": 99, "worker_id": "x"}\n', "line {n} holds op_code 99, which Optuna does not know"),
    (b'["a list"]\n', "line {n} is not an Optuna journal operation"),
    (b'{"op_code": 4}\n', "cannot be replayed"),
])
def test_a_damaged_journal_is_one_line_naming_the_line_and_the_way_out(tmp_path, space, train_options, capsys,
                                                                       damage, fragment) -> None:
    out = _finished_study(tmp_path, space, train_options)
    journal = out / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2]) + damage + b"".join(lines[2:]))
    capsys.readouterr()
    for command in (["--report", "s", "--out", str(out)],
                    ["--study", "s", "--out", str(out), "--space", str(space), *train_options]):
        assert main(["sweep", *command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment.format(n=3) in err[0] and str(journal) in err[0], err
