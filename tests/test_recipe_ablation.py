"""benchmarks/recipe_ablation.py: one short run per recipe variant, finished runs reused, one report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/recipe_ablation.py")


def _ablate(script, monkeypatch, out: Path, *names: str) -> dict:
    monkeypatch.setattr(sys, "argv", ["recipe_ablation.py", "--dataset", "cifar10-sample", "--epochs", "1",
                                      "--train-subset", "1000", "--out", str(out), "--only", *names])
    script.main()
    return json.loads((out / "ablation.json").read_text())


def test_variants_train_once_and_are_reported_together(script, monkeypatch, tmp_path: Path) -> None:
    names = [name for name, _ in script.VARIANTS]
    first = _ablate(script, monkeypatch, tmp_path, names[0], names[2])
    assert [r["name"] for r in first["results"]] == [names[0], names[2]]
    assert "--batch-size 128" in first["results"][1]["command"] and "--batch-size" not in first["results"][0]["command"]
    assert all(0 <= r["final_test_acc"] <= 1 and len(r["test_acc"]) == 1 for r in first["results"])
    trained = (tmp_path / "variant-00" / "metrics.csv").stat().st_mtime_ns

    second = _ablate(script, monkeypatch, tmp_path, names[1])
    assert [r["name"] for r in second["results"]] == names[:3]  # the earlier runs reported, in the table's order
    assert (tmp_path / "variant-00" / "metrics.csv").stat().st_mtime_ns == trained  # not trained again
    assert second["results"][0] == first["results"][0]
    assert (tmp_path / "ablation.png").stat().st_size > 0 and "cpu" in second


def test_an_unknown_variant_is_refused(script, monkeypatch, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        _ablate(script, monkeypatch, tmp_path, "batch 1024")
    assert "unknown variant 'batch 1024'" in capsys.readouterr().err
