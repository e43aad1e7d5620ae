"""Every shipped model, small: one line from Python and through torch.hub, then eval, predict, explain and export
from the command line, as a user meets them (the server: tests/serve/test_shipped_models.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resnet_cifar import create_model, list_pretrained, load_pretrained
from resnet_cifar.models.weights import shipped_weights

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "src/resnet_cifar/data/assets/examples"
SHIPPED = list_pretrained()


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_in_one_line_and_through_torch_hub_with_the_same_weights(name) -> None:
    weights = shipped_weights()[name]
    direct = create_model(weights.model, pretrained=name)
    hub = torch.hub.load(str(REPO), weights.model, source="local", pretrained=name)
    loaded = load_pretrained(name).model
    for key, value in direct.state_dict().items():
        assert torch.equal(hub.state_dict()[key], value) and torch.equal(loaded.state_dict()[key], value), key
    assert all(p.dtype == torch.float32 for p in direct.parameters())  # half on disk, float32 in use


@pytest.mark.parametrize("name", SHIPPED)
def test_eval_predict_explain_and_export_from_the_command_line(name, run_cli, tmp_path) -> None:
    evaluated = run_cli("eval", "--pretrained", name, "--dataset", "cifar10-sample", "--device", "cpu", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    accuracy = json.loads((tmp_path / f"eval-{name}/eval.json").read_text())["accuracy"]
    assert accuracy >= shipped_weights()[name].test_accuracy - 0.06  # the 500 sample images against the full test
    predicted = run_cli("predict", "--pretrained", name, str(EXAMPLES / "cat.png"), "--json", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["predictions"][0]["class"] in shipped_weights()[name].description()[
        "class_names"]
    explained = run_cli("explain", "--pretrained", name, str(EXAMPLES / "cat.png"), "--out", str(tmp_path / "why"),
                        cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert Path(json.loads((tmp_path / "why/explain.json").read_text())["images"][0]["figure"]).is_file()
    exported = run_cli("export", "--pretrained", name, "--format", "onnx", "--out", str(tmp_path / "model.onnx"),
                       cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "model.onnx").stat().st_size > 100_000
