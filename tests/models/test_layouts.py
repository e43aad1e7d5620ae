"""Option A's zero-pad layouts: weights convert exactly, new files record the layout, files of format 1 load with the
layout they were trained with."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from resnet_cifar.core.checkpoint import export_model, load_checkpoint, read_model_files
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.models import create_model
from resnet_cifar.models.layouts import convert_zero_pad, with_zero_pad


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with random BatchNorm statistics and affine weights, so no channel is neutral."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -1, 1), (module.running_var, 0.5, 2),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -0.5, 0.5)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model.eval()


@pytest.mark.parametrize("name,options", [("resnet20", {}), ("resnet56", {}), ("resnet18", {"shortcut": "A"}),
                                          ("resnet50", {"shortcut": "A"}), ("resnet20", {"shortcut": "B"})])
def test_weights_of_one_layout_give_the_same_outputs_in_the_other(name: str, options: dict) -> None:
    end = _randomised(create_model(name, zero_pad="end", **options))
    split = create_model(name, zero_pad="split", **options).eval()
    split.load_state_dict(convert_zero_pad(end.state_dict(), name, "end", "split", **options))
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = end(images)
        torch.testing.assert_close(split(images), reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())
        unconverted = create_model(name, zero_pad="split", **options).eval()
        unconverted.load_state_dict(end.state_dict())
        changed = (unconverted(images) - reference).abs().max()
    assert changed > 0.1 or options.get("shortcut") == "B"  # the layouts differ; option B has none


def test_the_layout_is_written_out_only_for_option_a_models() -> None:
    assert with_zero_pad("resnet20", {}) == {"zero_pad": "split"}
    assert with_zero_pad("resnet20", {}, "end") == {"zero_pad": "end"}
    assert with_zero_pad("resnet20", {"zero_pad": "end"}) == {"zero_pad": "end"}
    assert with_zero_pad("resnet18", {}) == {} and with_zero_pad("resnet18", {"shortcut": "A"}) == {
        "shortcut": "A", "zero_pad": "split"}
    assert with_zero_pad("plain20", {}) == {} and with_zero_pad("vgg11", {}) == {} and with_zero_pad("nope", {}) == {}


def _old_model_folder(folder, model: torch.nn.Module) -> None:
    """``model`` (layout "end") saved as resnet-cifar wrote model folders before format 2: no layout recorded."""
    info = model_info("resnet20", {}, [f"c{i}" for i in range(10)], (3, 32, 32), [0.5] * 3, [0.25] * 3)
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "model.json").write_text(json.dumps({"format_version": 1, **info}))


def test_a_model_folder_of_format_1_is_rebuilt_with_the_old_layout(tmp_path) -> None:
    old = _randomised(create_model("resnet20", zero_pad="end"))
    _old_model_folder(tmp_path / "old", old)
    trained = load_trained_model(tmp_path / "old")
    assert trained.info["model_options"] == {"zero_pad": "end"}
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trained.model(images), old(images))
    # Written again, it is format 2 with the layout recorded, and reads back the same.
    export_model(tmp_path / "new", old.state_dict(), trained.info)
    assert json.loads((tmp_path / "new" / "model.json").read_text())["model_options"] == {"zero_pad": "end"}
    assert read_model_files(tmp_path / "new")[1]["model_options"] == {"zero_pad": "end"}


def test_a_checkpoint_of_format_1_resumes_and_evaluates_with_the_old_layout(tmp_path) -> None:
    path = tmp_path / "last.pt"
    info = model_info("resnet20", {}, [f"c{i}" for i in range(10)], (3, 32, 32), [0.5] * 3, [0.25] * 3)
    torch.save({"format_version": 1, "model": {}, "config": {"model": "resnet20", "model_options": {}},
                "model_info": info}, path)
    state = load_checkpoint(path)
    assert state["config"]["model_options"] == state["model_info"]["model_options"] == {"zero_pad": "end"}
