"""One model source: what the user typed becomes one object, with one rule and one message for every command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_cifar import ResnetCifarError
from resnet_cifar.core.source import ModelSource, resolve_source
from resnet_cifar.models.weights import pretrained_manifest
from resnet_cifar.serve.app import ServeSettings

NEITHER = "give a model: a run folder, model folder, .pt checkpoint, .safetensors file or exported .onnx/.xml/.pt2 file"
BOTH = r"or --pretrained NAME, not both"


def test_each_kind_of_path_is_told_apart(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    folder = resolve_source(str(run))
    assert (folder.path, folder.folder, folder.name, folder.is_exported) == (run, run, "run", False)
    assert folder.export_path(".onnx") == run / "model.onnx"
    checkpoint = resolve_source(run / "best.pt")
    assert (checkpoint.folder, checkpoint.name, checkpoint.runtime) == (run, "run", None)
    runtimes = ((".onnx", "onnxruntime"), (".xml", "openvino"), (".pt2", "torch"), (".ONNX", "onnxruntime"))
    for suffix, runtime in runtimes:
        exported = resolve_source(run / f"model{suffix}")
        assert exported.is_exported and exported.runtime == runtime and exported.name == f"model{suffix}"
        with pytest.raises(ResnetCifarError, match="is an exported file, which holds no PyTorch weights to export"):
            exported.require_weights("export")
    resolve_source(run / "model.safetensors").require_weights("export")  # weights: nothing to refuse
    assert resolve_source(folder) is folder


def test_shipped_weights_have_their_own_folders_outside_the_package() -> None:
    shipped = resolve_source(None, "resnet20")
    assert shipped.path.name == "model.safetensors" and shipped.shipped.name == "resnet20"
    assert shipped.folder == Path("eval-resnet20") and shipped.export_path(".xml") == Path("resnet20.xml")
    entry = pretrained_manifest()["resnet20"]
    assert shipped.known_accuracy() == {"top1": entry["test_accuracy"], "evaluated_on": entry["evaluated_on"]}
    with pytest.raises(ResnetCifarError, match=r"no pretrained weights named 'resnet1000': available are resnet20"):
        resolve_source(None, "resnet1000")


def test_the_known_accuracy_of_a_folder_is_its_eval_json(tmp_path) -> None:
    source = resolve_source(tmp_path / "model.safetensors")
    assert source.known_accuracy() is None
    (tmp_path / "eval.json").write_text(json.dumps({"accuracy": 0.5, "dataset": "cifar10", "split": "test",
                                                    "images": 10}))
    assert source.known_accuracy()["top1"] == 0.5
    (tmp_path / "eval.json").write_text("{broken")
    assert source.known_accuracy() is None


def test_holds_model_sees_a_folder_with_weights_or_a_file(tmp_path) -> None:
    assert not ModelSource(tmp_path).holds_model()
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert ModelSource(tmp_path).holds_model() and ModelSource(tmp_path / "model.safetensors").holds_model()


@pytest.mark.parametrize("source,pretrained,message", [(None, None, NEITHER), ("run", "resnet20", BOTH)])
def test_one_message_for_every_command(run_cli, tmp_path, source, pretrained, message) -> None:
    with pytest.raises(ResnetCifarError, match=message):
        resolve_source(source, pretrained)
    with pytest.raises(ResnetCifarError, match=message):
        ServeSettings(source=source, pretrained=pretrained).check()
    given = ([source] if source else []) + (["--pretrained", pretrained] if pretrained else [])
    for command in (["eval", *given], ["export", *given, "--format", "pt2"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode != 0 and message.split(" or ")[0].replace("\\", "") in result.stderr, result.stderr
