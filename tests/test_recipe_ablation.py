"""benchmarks/recipe_ablation.py: one short run per recipe variant, finished runs reused, one report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/recipe_ablation.py")


def _ablate(script, monkeypatch, out: Path, *names: str, variant_set: str = "short") -> dict:
    monkeypatch.setattr(sys, "argv", ["recipe_ablation.py", "--dataset", "cifar10-sample", "--epochs", "1",
                                      "--train-subset", "1000", "--out", str(out), "--set", variant_set,
                                      "--only", *names])
    script.main()
    return json.loads((out / "ablation.json").read_text())


def test_variants_train_once_and_are_reported_together(script, monkeypatch, tmp_path: Path) -> None:
    names = [name for name, _ in script.SHORT_VARIANTS]
    first = _ablate(script, monkeypatch, tmp_path, names[0], names[2])
    assert [r["name"] for r in first["results"]] == [names[0], names[2]]
    assert "--batch-size 128" in first["results"][1]["command"] and "--batch-size" not in first["results"][0]["command"]
    assert all(0 <= r["final_test_acc"] <= 1 and len(r["test_acc"]) == 1 for r in first["results"])
    trained = (tmp_path / "short-00" / "metrics.csv").stat().st_mtime_ns

    second = _ablate(script, monkeypatch, tmp_path, names[1])
    assert [r["name"] for r in second["results"]] == names[:3]  # the earlier runs reported, in the table's order
    assert (tmp_path / "short-00" / "metrics.csv").stat().st_mtime_ns == trained  # not trained again
    assert second["results"][0] == first["results"][0]
    assert (tmp_path / "ablation.png").stat().st_size > 0 and "cpu" in second


def test_the_long_set_adds_each_regulariser_to_the_cpu_base(script, monkeypatch, tmp_path: Path) -> None:
    names = [name for name, _ in script.LONG_VARIANTS]
    report = _ablate(script, monkeypatch, tmp_path, names[1], variant_set="long")
    assert report["set"] == "long" and [r["name"] for r in report["results"]] == [names[1]]
    assert (tmp_path / "long-01" / "metrics.csv").exists()  # its own folder, never a short-set run's
    command = report["results"][0]["command"]
    assert "--batch-size 128 --lr 0.2 --cutout 8" in command
    regularisers = [options for name, options in script.LONG_VARIANTS if name.startswith("batch 128, lr 0.2")]
    assert len(regularisers) >= 6 and all(o[:4] == script.CPU_BASE for o in regularisers)
    assert len({tuple(options) for _, options in script.LONG_VARIANTS}) == len(names)  # no variant twice


def test_an_unknown_variant_is_refused(script, monkeypatch, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        _ablate(script, monkeypatch, tmp_path, "batch 1024")
    assert "unknown variant 'batch 1024'" in capsys.readouterr().err


def test_the_speedrun_set_adds_each_airbench_ingredient_and_reports_tta(script, monkeypatch, tmp_path: Path) -> None:
    names = [name for name, _ in script.SPEEDRUN_VARIANTS]
    report = _ablate(script, monkeypatch, tmp_path, names[2], variant_set="speedrun")
    result = report["results"][0]
    assert result["name"] == names[2] and "--tta flip-translate" in result["command"]
    assert "--flip alternate" in result["command"] and 0 <= result["final_tta_acc"] <= 1
    everything = script.SPEEDRUN_VARIANTS[-1][1]
    assert all(option in everything for _, options in script.SPEEDRUN_VARIANTS[1:-1] for option in options)
