"""benchmarks/gpu/collect.py: the GPU kit's fetched folders become one JSON and one figure."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from resnet_cifar.training.callbacks import METRIC_COLUMNS


@pytest.fixture(scope="module")
def collect(load_script):
    return load_script("benchmarks/gpu/collect.py")


def _call_folder(folder: Path, runs: dict[str, list[float]], baseline: list[float] | None = None) -> Path:
    folder.mkdir()
    (folder / "gpu.txt").write_text("name, driver\nNVIDIA Test GPU, 1\ntorch 2.x\n")
    for name, accuracies in runs.items():
        with open(folder / f"{name}-metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            for i, acc in enumerate(accuracies):
                writer.writerow({"epoch": i + 1, "test_acc": acc, "elapsed_seconds": 2 * (i + 1),
                                 "wall_seconds": 3 * (i + 1)})
        (folder / f"{name}-eval.txt").write_text("cat   1000   90.00%\noverall           10000    91.50%   "
                                                 "loss 0.3  (flip TTA)\n")
    if baseline:
        rows = [{"epoch": i + 1, "test_acc": acc, "elapsed_seconds": 50 * (i + 1), "wall_seconds": 60 * (i + 1)}
                for i, acc in enumerate(baseline)]
        (folder / "baseline.json").write_text(json.dumps({"epochs": len(rows), "rows": rows}))
    (folder / "tests.log").write_text("PASSED tests/test_gpu.py::test_a\nFAILED tests/test_gpu.py::test_b - x\n"
                                      "==== 1 failed, 1 passed in 3.0s ====\n")
    return folder


def test_runs_of_every_call_are_compared_with_the_baseline_of_another(collect, tmp_path, monkeypatch) -> None:
    first = _call_folder(tmp_path / "one", {"fast": [0.5, 0.8]}, baseline=[0.6, 0.85])
    second = _call_folder(tmp_path / "two", {"fast": [0.7, 0.86]})
    out = tmp_path / "results" / "gpu"
    monkeypatch.setattr("sys.argv", ["collect.py", "--out", str(out), str(first), f"{second}=again-"])
    collect.main()
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["runs"]) == {"fast", "again-fast"} and report["runs"]["fast"]["tta_acc"] == pytest.approx(0.915)
    assert report["runs"]["fast"]["versus_baseline"]["speedup"] is None  # 0.8 never reaches 0.85
    assert report["runs"]["again-fast"]["versus_baseline"]["speedup"] == pytest.approx(120 / 6)  # wall clocks
    assert report["tests"]["passed"] == ["tests/test_gpu.py::test_a"]
    assert report["tests"]["failed"] == ["tests/test_gpu.py::test_b"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
