"""Shipped weights: the manifest, checksums, load_pretrained, and eval/predict --pretrained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resnet_cifar import ResnetCifarError, create_model, list_pretrained, load_pretrained
from resnet_cifar.core.batches import predict_batches
from resnet_cifar.core.checkpoint import export_model
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.data import load_dataset
from resnet_cifar.inference.pretrained import add_pretrained
from resnet_cifar.models.weights import pretrained_manifest, pretrained_weights

EXAMPLES = Path(__file__).resolve().parents[2] / "src/resnet_cifar/data/assets/examples"
# The shipped resnet20 scores 87.68% on the full test set of our CIFAR-10 copy and 88.2% on the 500 images of the
# bundled test sample (BENCHMARKS.md); 85% leaves room for rounding across CPUs, not for broken weights or
# preprocessing (chance is 10%).
SAMPLE_ACCURACY_FLOOR = 0.85


@pytest.fixture
def exported(tmp_path) -> tuple[Path, torch.nn.Module]:
    """A run folder holding exported (untrained) resnet20 weights, and the model."""
    model = create_model("resnet20")
    info = model_info("resnet20", {}, [f"class{i}" for i in range(10)], (3, 32, 32), [0.5] * 3, [0.25] * 3,
                      dataset="cifar10", config={"data_dir": "/somewhere/on/the/training/machine", "epochs": 7})
    export_model(tmp_path / "run", model.state_dict(), info)
    return tmp_path / "run", model


def _add(exported: tuple[Path, torch.nn.Module], root: Path) -> dict:
    return add_pretrained(exported[0], "tiny", test_accuracy=0.123456, evaluated_on="a test set",
                          train_minutes=1.04, command="resnet-cifar train ...", root=root)


def test_added_weights_load_back_exactly_with_their_record(exported, tmp_path) -> None:
    root = tmp_path / "pretrained"
    entry = _add(exported, root)
    assert list_pretrained(root) == ["tiny"]
    assert pretrained_manifest(root)["tiny"] == entry
    assert entry["test_accuracy"] == 0.1235 and entry["epochs"] == 7 and entry["dataset"] == "cifar10"
    loaded = load_pretrained("tiny", root=root)
    for key, value in exported[1].state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert loaded.class_names[3] == "class3" and not loaded.model.training
    # evaluation of shipped weights looks in ./data, not in the training machine's folder
    assert json.loads((root / "tiny/model.json").read_text())["config"]["data_dir"] == "data"


def test_damaged_weights_are_refused(exported, tmp_path) -> None:
    root = tmp_path / "pretrained"
    _add(exported, root)
    weights = root / "tiny/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ResnetCifarError, match="checksum"):
        load_pretrained("tiny", root=root)
    weights.unlink()
    with pytest.raises(ResnetCifarError, match="missing"):
        pretrained_weights("tiny", root)


def test_a_changed_model_json_is_refused_too(exported, tmp_path) -> None:
    """model.json names the classes: reversing them would turn every answer into another, silently."""
    root = tmp_path / "pretrained"
    _add(exported, root)
    info_path = root / "tiny/model.json"
    info = json.loads(info_path.read_text())
    info["class_names"] = info["class_names"][::-1]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ResnetCifarError, match="model.json does not match its checksum"):
        load_pretrained("tiny", root=root)


def test_a_manifest_entry_cannot_point_outside_the_pretrained_folder(exported, tmp_path) -> None:
    root = tmp_path / "pretrained"
    _add(exported, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["tiny"]["file"] = "../../elsewhere/model.safetensors"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResnetCifarError, match="outside the package"):
        pretrained_weights("tiny", root)


def test_a_damaged_manifest_breaks_no_help_text(monkeypatch, tmp_path, capsys) -> None:
    from resnet_cifar import cli
    from resnet_cifar.models import weights as pretrained

    (tmp_path / "manifest.json").write_text("{not json")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(pretrained.list_pretrained, "__defaults__", (tmp_path,))
    with pytest.raises(SystemExit) as done:
        cli.main(["eval", "--help"])
    assert done.value.code == 0 and "unreadable" in capsys.readouterr().out


def test_unknown_name_lists_what_is_shipped(exported, tmp_path) -> None:
    root = tmp_path / "pretrained"
    _add(exported, root)
    with pytest.raises(ResnetCifarError, match=r"'resnet1000'.*available are tiny"):
        load_pretrained("resnet1000", root=root)


def test_shipped_resnet20_is_accurate_on_the_bundled_test_sample() -> None:
    entry = pretrained_manifest()["resnet20"]
    assert entry["test_accuracy"] >= SAMPLE_ACCURACY_FLOOR
    trained = load_pretrained("resnet20")
    test = load_dataset("cifar10-sample", "test")
    assert predict_batches(trained.model, trained.batches(test)).accuracy >= SAMPLE_ACCURACY_FLOOR


def test_eval_and_predict_pretrained_from_the_command_line(run_cli, tmp_path) -> None:
    result = run_cli("eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--device", "cpu", "--json",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval-resnet20/eval.json").read_text())
    assert report["accuracy"] >= SAMPLE_ACCURACY_FLOOR
    result = run_cli("predict", "--pretrained", "resnet20", str(EXAMPLES), "--json", "--top-k", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    top = {Path(item["input"]).stem: item["predictions"][0]["class"] for item in json.loads(result.stdout)}
    assert top == {"cat": "cat", "horse": "horse", "ship": "ship"}
    both = run_cli("eval", str(tmp_path), "--pretrained", "resnet20", cwd=tmp_path)
    assert both.returncode != 0 and "or --pretrained NAME, not both" in both.stderr
