"""The experiments end to end on the bundled sample (tiny runs), and their reports."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_cifar.cli import main
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.experiments.degradation import _verdict, degradation
from resnet_cifar.experiments.paper import _verdict as paper_verdict
from resnet_cifar.experiments.paper import paper
from resnet_cifar.experiments.paper_schedule import PAPER_EPOCHS, paper_config
from resnet_cifar.experiments.report import markdown_table, settings_line
from resnet_cifar.experiments.runner import Finished
from resnet_cifar.models import create_model
from resnet_cifar.models.summary import count_parameters
from resnet_cifar.training.config import TrainConfig

TINY = {"dataset": "cifar10-sample", "train_subset": 200, "val_split": 100, "device": "cpu"}
TINY_ARGS = ["--dataset", "cifar10-sample", "--train-subset", "200", "--val-split", "100", "--device", "cpu",
             "--quiet"]


def test_paper_recipe_is_64k_steps_on_the_45k_split_with_drops_at_32k_and_48k() -> None:
    config = paper_config("resnet20")
    steps_per_epoch = 45_000 // config.batch_size  # whole batches only
    assert (config.epochs, config.val_split, config.milestones) == (PAPER_EPOCHS, 5000, [91, 137])
    assert config.epochs * steps_per_epoch == pytest.approx(64_000, rel=0.002)
    assert [m * steps_per_epoch for m in config.milestones] == pytest.approx([32_000, 48_000], rel=0.005)
    assert paper_config("resnet20", val_split=0).val_split == 0


def test_paper_milestones_sit_at_half_and_three_quarters() -> None:
    assert paper_config("resnet20", 164).milestones == [82, 123]
    assert paper_config("resnet20", 2).milestones == [1]
    assert paper_config("resnet20", 1).milestones == []
    config = paper_config("resnet56", 40)
    assert (config.lr, config.weight_decay, config.batch_size, config.milestones) == (0.1, 1e-4, 128, [20, 30])
    assert paper_config("resnet20", 1).schedule == "constant"


def test_settings_line_names_what_the_runs_share() -> None:
    line = settings_line(paper_config("resnet56", 40, train_subset=1000, val_split=500))
    for part in ("recipe paper", "1000 training images (500 held out", "40 epochs", "batch 128",
                 "SGD lr 0.1 momentum 0.9", "lr x0.1 at epochs [20, 30]", "seed 0"):
        assert part in line
    adam = settings_line(TrainConfig(optimizer="adam", lr=1e-3, schedule="cosine"))
    assert "ADAM lr 0.001 weight decay" in adam and "momentum" not in adam and "cosine schedule" in adam


def test_degradation_draws_tabulates_and_reuses_finished_runs(tmp_path, capsys) -> None:
    out = tmp_path / "degradation"
    runs = degradation([20], epochs=1, out=out, quiet=True, **TINY)
    assert [run.name for run in runs] == ["plain20", "resnet20"]
    assert all(run.config.train_subset == 200 and run.config.seed == 0 for run in runs)
    results = json.loads((out / "degradation.json").read_text())
    assert [r["model"] for r in results["runs"]] == ["plain20", "resnet20"]
    assert (out / "degradation.png").stat().st_size > 10_000
    assert "| plain20 " in (out / "degradation.md").read_text()
    assert [run.steps_per_epoch for run in runs] == [1, 1]  # 200 images, whole batches of 128: the x axis in steps
    written = (out / "plain20" / "last.pt").stat().st_mtime_ns
    degradation([20], epochs=1, out=out, quiet=True, **TINY)
    assert (out / "plain20" / "last.pt").stat().st_mtime_ns == written  # finished: not trained again
    assert "finished already" in capsys.readouterr().err
    moved = degradation([20], epochs=1, out=out, quiet=True, **{**TINY, "data_dir": str(tmp_path / "moved")})
    assert [run.history for run in moved] == [run.history for run in runs]  # where the data lies changes no result
    with pytest.raises(ResnetCifarError, match=r"other settings \(seed\)"):
        degradation([20], epochs=1, out=out, quiet=True, **{**TINY, "seed": 1})


def _finished(name: str, final_train_acc: float) -> Finished:
    return Finished(name, TrainConfig(model=name), [{"epoch": 1, "train_acc": final_train_acc}], Path(name))


def test_tables_describe_the_trained_model_with_its_classes_and_options() -> None:
    plain = Finished("a", TrainConfig(model="resnet20"), [], Path("a")).model_cost()
    config = TrainConfig(model="resnet20", dataset="cifar100", model_options={"shortcut": "B"})
    own = Finished("b", config, [], Path("b"), num_classes=100).model_cost()
    assert own[0] == count_parameters(create_model("resnet20", num_classes=100, shortcut="B"))
    projections = 16 * 32 * 16 * 16 + 32 * 64 * 8 * 8  # the two 1x1 convolutions of option B, per image
    assert own[1] - plain[1] == projections + 64 * 90  # and 90 more classes in the head
    assert plain[1] == pytest.approx(40.55e6, rel=0.01)  # convolutions and head of ResNet-20, per 32x32 image


def test_verdict_compares_the_deepest_with_the_shallowest_net() -> None:
    agrees = _verdict([_finished("plain20", 0.9), _finished("plain56", 0.8)],
                      [_finished("resnet20", 0.9), _finished("resnet56", 0.95)])
    assert agrees.count("as the paper reports") == 2 and "plain56 ends with a higher training error" in agrees
    disagrees = _verdict([_finished("plain20", 0.8), _finished("plain56", 0.9)],
                         [_finished("resnet20", 0.9), _finished("resnet56", 0.95)])
    assert "plain56 ends with a lower training error than plain20 (10.00% against 20.00%): the paper reports " \
           "higher" in disagrees


def test_unknown_depths_are_refused_before_any_training(tmp_path) -> None:
    with pytest.raises(ResnetCifarError, match="20, 32, 44, 56 and 110"):
        degradation([21], out=tmp_path)
    with pytest.raises(ResnetCifarError, match="no resnet18"):
        paper([18], out=tmp_path)


def test_paper_puts_the_published_error_next_to_ours(tmp_path) -> None:
    paper([20], epochs=2, out=tmp_path, quiet=True, **TINY)
    table = (tmp_path / "paper.md").read_text()
    assert "| resnet20 |" in table and "8.75" in table and "lr x0.1 at epochs [1]" in table
    assert "19.0" in table and "JPEG-derived copy" in table  # published weights on the same copy, side by side
    run = json.loads((tmp_path / "paper.json").read_text())["runs"][0]
    assert run["paper_test_error"] == 0.0875 and 0 < run["test_errors"][0] < 1 and run["seeds"] == [0]
    assert (tmp_path / "paper.png").stat().st_size > 10_000


def test_paper_runs_several_seeds_and_gives_their_spread(tmp_path) -> None:
    runs = paper([20], epochs=1, runs=2, out=tmp_path, quiet=True, **{**TINY, "seed": 3})
    assert [(run.name, run.config.seed) for run in runs] == [("resnet20", 3), ("resnet20-seed4", 4)]
    row = json.loads((tmp_path / "paper.json").read_text())["runs"][0]
    assert row["seeds"] == [3, 4] and len(row["test_errors"]) == 2
    assert "(n=2)" in (tmp_path / "paper.md").read_text()
    with pytest.raises(ResnetCifarError, match="--runs must be at least 1"):
        paper([20], runs=0, out=tmp_path)


def test_paper_verdict_names_the_deeper_nets_that_beat_the_shallowest() -> None:
    def finished(name: str, test_acc: float) -> Finished:
        return Finished(name, TrainConfig(model=name), [{"epoch": 1, "test_acc": test_acc}], Path(name))

    agrees = paper_verdict({"resnet20": [finished("resnet20", 0.8)], "resnet56": [finished("resnet56", 0.85)]})
    assert agrees == "On test error, resnet56 beats resnet20 (as in the paper, deeper is better)."
    mixed = paper_verdict({"resnet20": [finished("resnet20", 0.8)], "resnet32": [finished("resnet32", 0.75)],
                           "resnet56": [finished("resnet56", 0.85)]})
    assert "resnet56 beats resnet20; resnet32 does not beat resnet20" in mixed


def test_paper_and_degradation_share_their_resnet_runs(tmp_path, capsys) -> None:
    paper([20], epochs=1, out=tmp_path, quiet=True, **TINY)
    written = (tmp_path / "resnet20" / "last.pt").stat().st_mtime_ns
    degradation([20], epochs=1, out=tmp_path, quiet=True, **TINY)
    assert (tmp_path / "resnet20" / "last.pt").stat().st_mtime_ns == written
    assert {"paper.md", "degradation.md", "plain20"} <= {path.name for path in tmp_path.iterdir()}


def test_jobs_train_runs_in_processes_of_their_own_and_reuse_them(tmp_path, capsys) -> None:
    assert main(["experiment", "degradation", "--depths", "20", "--epochs", "1", "--jobs", "2", "--threads", "2",
                 "--out", str(tmp_path), *TINY_ARGS]) == 0
    results = json.loads((tmp_path / "degradation.json").read_text())
    assert [r["model"] for r in results["runs"]] == ["plain20", "resnet20"]
    assert all((tmp_path / name / "model.safetensors").is_file() for name in ("plain20", "resnet20"))
    capsys.readouterr()
    assert main(["experiment", "degradation", "--depths", "20", "--epochs", "1", "--jobs", "2",
                 "--out", str(tmp_path), *TINY_ARGS]) == 0
    assert capsys.readouterr().err.count("finished already") == 2  # no process started again
    assert main(["experiment", "paper", "--depths", "20", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def _epochs(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_an_experiment_with_checkpoints_and_the_rerun_continues_the_curves(tmp_path, jobs) -> None:
    command = [sys.executable, "-m", "resnet_cifar", "experiment", "degradation", "--depths", "20", "--epochs", "3",
               "--jobs", jobs, "--out", str(tmp_path), *TINY_ARGS]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not all((tmp_path / name / "metrics.csv").is_file() for name in ("plain20",) + (("resnet20",) * (jobs == "2"))):
        assert process.poll() is None and time.time() < deadline, process.communicate()[0]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output and "stopped during plain20" in output and "run the same command" in output
    stopped = {name: _epochs(tmp_path / name) for name in ("plain20", "resnet20")
               if (tmp_path / name / "metrics.csv").is_file()}
    assert all(len(rows) < 3 for rows in stopped.values()) and (tmp_path / "plain20" / "last.pt").is_file()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert rerun.returncode == 0, rerun.stderr
    for name, before in stopped.items():
        after = _epochs(tmp_path / name)
        assert [row["epoch"] for row in after] == ["1", "2", "3"]  # no epoch lost or repeated
        assert after[:len(before)] == before  # the epochs finished before the stop stand as they were
        elapsed = [float(row["elapsed_seconds"]) for row in after]
        assert elapsed == sorted(elapsed)  # the clock goes on from where it stopped


def test_compare_from_the_command_line(tmp_path, capsys) -> None:
    code = main(["experiment", "compare", "lenet5", "resnet20", "--dataset", "cifar10-sample", "--train-subset",
                 "200", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--channels-last",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    assert json.loads((tmp_path / "resnet20/config.json").read_text())["channels_last"] is True
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [(r["model"], r["kind"]) for r in runs] == [("lenet5", "baseline"), ("resnet20", "residual")]
    assert runs[0]["parameters"] == 62_006 and runs[1]["macs"] > 40e6 > runs[0]["macs"]
    assert (tmp_path / "comparison.png").is_file()
    assert main(["experiment", "compare", "resnet20", "resnet20", "--out", str(tmp_path / "twice")]) == 2
    assert "listed twice" in capsys.readouterr().err


def test_compare_rows_of_the_other_families_count_from_the_meta_device(tmp_path) -> None:
    code = main(["experiment", "compare", "resnet9", "wrn-10-1", "--dataset", "cifar10-sample", "--train-subset",
                 "100", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    runs = {r["model"]: r for r in json.loads((tmp_path / "results.json").read_text())["runs"]}
    assert runs["resnet9"]["parameters"] == 6_573_120 and round(runs["resnet9"]["macs"] / 1e6) == 379
    assert runs["wrn-10-1"]["kind"] == "residual" and runs["wrn-10-1"]["parameters"] < 100_000


def test_markdown_table_aligns_columns() -> None:
    assert markdown_table(["model", "error"], [["a", "1.5"], ["bbbb", "10.25"]]).splitlines() == [
        "| model | error |", "|-------|------:|", "| a     |   1.5 |", "| bbbb  | 10.25 |"]


def test_compare_recipes_on_one_model_from_the_command_line(tmp_path, capsys) -> None:
    code = main(["experiment", "compare", "resnet20", "--recipe", "seeds-sgd", "--recipe", "fast", "--dataset",
                 "cifar10-sample", "--train-subset", "600", "--epochs", "2", "--device", "cpu", "--out",
                 str(tmp_path), "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "resnet20" and [run["recipe"] for run in results["runs"]] == ["seeds-sgd", "fast"]
    seeds, fast = results["runs"]
    assert seeds["batch_size"] == 128 and fast["batch_size"] == 512  # each recipe's own settings
    assert json.loads((tmp_path / "fast/config.json").read_text())["recipe"] == "fast"
    curve = seeds["curve"]
    assert [point["epoch"] for point in curve] == [1, 2] and curve[0]["wall_minutes"] < curve[1]["wall_minutes"]
    assert seeds["minutes_to_first_final"] <= seeds["wall_minutes"]  # the reference reaches its own final
    reached = next((p["wall_minutes"] for p in fast["curve"] if p["test_acc"] >= seeds["test_acc"]), None)
    assert fast["minutes_to_first_final"] == reached
    assert (tmp_path / "recipes.png").is_file() and "minutes to" in (tmp_path / "results.md").read_text()
    assert main(["experiment", "compare", "resnet20", "lenet5", "--recipe", "fast", "--recipe", "default",
                 "--out", str(tmp_path / "two")]) == 2
    assert "several recipes are compared on one model, got 2" in capsys.readouterr().err
    assert main(["experiment", "compare", "resnet20", "--recipe", "fast", "--recipe", "fast",
                 "--out", str(tmp_path / "same")]) == 2
    assert "two or more different recipes" in capsys.readouterr().err


def test_compare_adds_robustness_columns_relative_to_the_first_model(tmp_path, capsys) -> None:
    pytest.importorskip("scipy", reason="the corruptions need the corruptions extra (SciPy)")
    code = main(["experiment", "compare", "resnet20", "lenet5", "--dataset", "cifar10-sample", "--data-dir",
                 str(tmp_path / "data"), "--train-subset", "200", "--epochs", "1", "--batch-size", "50", "--device",
                 "cpu", "--out", str(tmp_path), "--quiet", "--corruptions", "fog", "contrast", "--severities", "5"])
    assert code == 0
    first, second = (run["corruptions"] for run in json.loads((tmp_path / "results.json").read_text())["runs"])
    assert first["relative_mce"] == pytest.approx(1.0) and first["mce"] == pytest.approx(1.0)
    assert 0 < second["mean_corruption_accuracy"] < 1 and second["mce"] != pytest.approx(1.0)
    assert "relative mCE (resnet20 = 100)" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "lenet5" / "robustness.png").is_file()
    assert main(["experiment", "compare", "resnet20", "--recipe", "fast", "--recipe", "default", "--corruptions",
                 "--out", str(tmp_path / "recipes")]) == 2
    assert "give one recipe" in capsys.readouterr().err
