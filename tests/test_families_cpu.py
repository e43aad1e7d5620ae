"""benchmarks/families_cpu.py: each model trains with its own epochs, and the table reads accuracy at the budget."""
from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/families_cpu.py")


def test_each_model_trains_its_epochs_and_the_budget_reads_the_curve(script, fake_cifar, tmp_path,
                                                                      monkeypatch) -> None:
    data = fake_cifar(tmp_path / "data", train_images=300)  # two batches of 128
    out = tmp_path / "families"
    monkeypatch.setattr(sys, "argv", ["families_cpu.py", "--data-dir", str(data), "--out", str(out),
                                      "--budget-minutes", "100", "--threads", "1", "wrn-10-1=2", "resnet20=1"])
    script.main()
    report = json.loads((out / "results.json").read_text())
    runs = {run["model"]: run for run in report["runs"]}
    assert list(runs) == ["wrn-10-1", "resnet20"] and (runs["wrn-10-1"]["epochs"], runs["resnet20"]["epochs"]) == (2, 1)
    assert runs["wrn-10-1"]["test_acc_at_budget"] == runs["wrn-10-1"]["test_acc"]  # both epochs well inside 100 min
    assert (out / "families.png").stat().st_size > 0 and "accuracy at 100 min %" in (out / "results.md").read_text()
    assert report["cpu"].endswith("1 threads") and report["cpu"] in (out / "results.md").read_text()
    first_epoch_end = runs["wrn-10-1"]["curve"][0][0]
    (finished,) = [run for run in script.run_all(
        {"wrn-10-1": script.recipe_config("fast", model="wrn-10-1", epochs=2, batch_size=128, device="cpu",
                                          data_dir=str(data), download=False)}, out, quiet=True)]
    assert script.at_budget(finished, first_epoch_end) == finished.history[0]["test_acc"]  # reused, not retrained
    assert script.at_budget(finished, first_epoch_end / 2) is None


@pytest.mark.parametrize("item, message", [("resnet9", "give MODEL=EPOCHS"), ("resnet9=0", "give MODEL=EPOCHS"),
                                           ("wrn-11-2=3", "wrn-11-2 is no Wide ResNet")])
def test_a_bad_plan_is_refused_before_training(script, item, message) -> None:
    with pytest.raises((SystemExit, Exception), match=message):
        script.parse_plan([item])
