"""benchmarks/time_to_accuracy.py: when a run reaches the baseline's final accuracy, and how much sooner."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from resnet_cifar.training.callbacks import METRIC_COLUMNS


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/time_to_accuracy.py")


def _baseline(path: Path, accuracies: list[float], seconds_per_epoch: float, epochs: int | None = None) -> Path:
    """A seeds_baseline.py report of these epochs, out of ``epochs`` planned (default: all of them ran)."""
    rows = [{"epoch": i + 1, "test_acc": acc, "elapsed_seconds": seconds_per_epoch * (i + 1)}
            for i, acc in enumerate(accuracies)]
    path.write_text(json.dumps({"recipe": "seeds", "epochs": epochs or len(rows), "rows": rows}))
    return path


def _metrics_csv(path: Path, accuracies: list[float], seconds_per_epoch: float) -> Path:
    """A metrics.csv as ``resnet-cifar train`` writes it: every column, the validation ones empty."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        for i, acc in enumerate(accuracies):
            writer.writerow({"epoch": i + 1, "train_loss": 1.0, "train_acc": acc, "val_loss": "", "val_acc": "",
                             "test_loss": 1.0, "test_acc": acc, "lr": 0.1, "skipped_batches": 0,
                             "epoch_seconds": seconds_per_epoch, "elapsed_seconds": seconds_per_epoch * (i + 1)})
    return path


def test_first_epoch_at_or_above_the_baselines_final_accuracy_counts(script, tmp_path: Path) -> None:
    baseline, planned = script.read_baseline(_baseline(tmp_path / "b.json", [0.5, 0.8, 0.9], seconds_per_epoch=100))
    ours = script.read_metrics(_metrics_csv(tmp_path / "m.csv", [0.7, 0.89, 0.9, 0.93], seconds_per_epoch=5))
    summary = script.compare(baseline, ours, planned)
    assert summary["ours_epoch_reaching"] == 3 and summary["ours_seconds_reaching"] == 15
    assert summary["speedup"] == pytest.approx(300 / 15)
    assert summary["ours_gain_points"] == pytest.approx(3.0)


def test_a_run_that_never_gets_there_has_no_speedup(script, tmp_path: Path) -> None:
    baseline, planned = script.read_baseline(_baseline(tmp_path / "b.json", [0.9], seconds_per_epoch=100))
    ours = script.read_metrics(_metrics_csv(tmp_path / "m.csv", [0.7, 0.85], seconds_per_epoch=5))
    summary = script.compare(baseline, ours, planned)
    assert summary["speedup"] is None and summary["ours_epoch_reaching"] is None
    assert "never reached it" in script.describe(summary, "ours")


def test_a_baseline_stopped_before_its_last_epoch_is_flagged(script, tmp_path: Path) -> None:
    ours = script.read_metrics(_metrics_csv(tmp_path / "m.csv", [0.9], seconds_per_epoch=5))
    finished_rows, finished_planned = script.read_baseline(_baseline(tmp_path / "done.json", [0.5, 0.8], 100))
    stopped_rows, stopped_planned = script.read_baseline(_baseline(tmp_path / "cut.json", [0.5, 0.8], 100, epochs=50))
    finished = script.compare(finished_rows, ours, finished_planned)
    stopped = script.compare(stopped_rows, ours, stopped_planned)
    assert "STOPPED EARLY" not in script.describe(finished, "ours")
    assert stopped["baseline_planned_epochs"] == 50
    assert "STOPPED EARLY: 50 epochs planned" in script.describe(stopped, "ours")


def test_command_writes_the_figure_and_the_summary(script, tmp_path: Path, monkeypatch, capsys) -> None:
    baseline = _baseline(tmp_path / "b.json", [0.5, 0.8], seconds_per_epoch=60)
    metrics = _metrics_csv(tmp_path / "m.csv", [0.6, 0.85], seconds_per_epoch=3)
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", str(baseline), str(metrics), "--label", "fast",
                                      "--out", str(tmp_path / "out")])
    script.main()
    written = json.loads((tmp_path / "out" / "time-to-accuracy.json").read_text())
    assert written["label"] == "fast" and written["speedup"] == pytest.approx(120 / 6)
    assert (tmp_path / "out" / "time-to-accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "speed-up 20.0x" in capsys.readouterr().out


def test_another_runs_metrics_csv_can_be_the_baseline(script, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _metrics_csv(run / "metrics.csv", [0.5, 0.7], seconds_per_epoch=50)
    (run / "config.json").write_text(json.dumps({"epochs": 50}))  # stopped after 2 of 50
    rows, planned = script.read_baseline(run / "metrics.csv")
    assert [row["test_acc"] for row in rows] == [0.5, 0.7] and planned == 50
    summary = script.compare(rows, script.read_metrics(_metrics_csv(tmp_path / "m.csv", [0.75], 5)), planned)
    assert summary["speedup"] == pytest.approx(100 / 5) and "STOPPED EARLY" in script.describe(summary, "ours")


def test_the_wall_clock_counts_when_rows_have_it(script, tmp_path: Path) -> None:
    """Saving time is part of time to accuracy: ``wall_seconds`` wins over ``elapsed_seconds`` (compute only)."""
    baseline = [{"epoch": 1, "test_acc": 0.8, "elapsed_seconds": 100.0, "wall_seconds": 110.0}]
    ours = [{"epoch": 1, "test_acc": 0.9, "elapsed_seconds": 4.0, "wall_seconds": 5.0}]
    summary = script.compare(baseline, ours, 1)
    assert summary["speedup"] == pytest.approx(110 / 5) and summary["compute_speedup"] == pytest.approx(100 / 4)
    assert summary["ours_seconds_reaching"] == 5.0 and summary["ours_compute_seconds_reaching"] == 4.0


def test_the_projected_reference_projects_the_timed_epochs_to_the_whole_run(script, load_script, tmp_path: Path,
                                                                             monkeypatch, capsys) -> None:
    """Three epochs of 50 s and two of 75 s timed here: 60 s an epoch, 164 epochs take 9,840 s, and a run
    reaching the given final accuracy at 3,280 s is 3x sooner."""
    reference = load_script("benchmarks/projected_reference.py")
    before = _metrics_csv(tmp_path / "before.csv", [0.4, 0.5, 0.6], seconds_per_epoch=50)
    after = _metrics_csv(tmp_path / "after.csv", [0.4, 0.5], seconds_per_epoch=75)
    monkeypatch.setattr(sys, "argv", ["projected_reference.py", str(before), str(after), "--final-acc", "0.8768",
                                      "--epochs", "164", "--out", str(tmp_path / "paper.json")])
    reference.main()
    assert "60.0 s per epoch over 5 epochs: 164 epochs = 164.0 min" in capsys.readouterr().out
    baseline, planned = script.read_baseline(tmp_path / "paper.json")
    ours = script.read_metrics(_metrics_csv(tmp_path / "ours.csv", [0.80, 0.8768, 0.89], seconds_per_epoch=1640))
    summary = script.compare(baseline, ours, planned)
    assert planned == summary["baseline_epochs"] == 164 and summary["baseline_seconds"] == pytest.approx(9840)
    assert "STOPPED EARLY" not in script.describe(summary, "ours")
    assert summary["ours_epoch_reaching"] == 2 and summary["speedup"] == pytest.approx(3.0)
