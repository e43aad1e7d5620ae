"""Atomic writes, safe checkpoint loading and exported weights."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from resnet_cifar import ResnetCifarError, create_model
from resnet_cifar.core.checkpoint import clean_state_dict, export_model, load_checkpoint, save_checkpoint
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.files import atomic_write, atomic_write_bytes
from resnet_cifar.inference.loading import load_trained_model

CLASSES = [f"c{i}" for i in range(10)]


def _export(folder, model, name="resnet20", weights=None) -> None:
    info = model_info(name, {}, CLASSES, (3, 32, 32), [0.5] * 3, [0.25] * 3)
    export_model(folder, weights if weights is not None else model.state_dict(), info)


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"good")

    def dies_half_way(f) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, dies_half_way)
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["last.pt"]


def test_written_files_get_normal_permissions(tmp_path) -> None:
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_clean_state_dict_drops_wrapper_prefixes() -> None:
    state = {"module._orig_mod.fc.weight": torch.ones(1), "_orig_mod.fc.bias": torch.zeros(1), "fc.x": torch.ones(1)}
    assert list(clean_state_dict(state)) == ["fc.weight", "fc.bias", "fc.x"]


def test_exported_weights_round_trip_and_load_in_eval_mode(tmp_path) -> None:
    model = create_model("resnet20")
    _export(tmp_path, model)
    trained = load_trained_model(tmp_path)
    assert not trained.model.training and trained.class_names == CLASSES and trained.mean == [0.5] * 3
    for key, value in model.state_dict().items():
        assert torch.equal(trained.model.state_dict()[key], value)


def test_prefixed_keys_from_dataparallel_or_compile_load(tmp_path) -> None:
    model = create_model("resnet20")
    _export(tmp_path, model)
    prefixed = {f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(prefixed, str(tmp_path / "model.safetensors"))
    assert torch.equal(load_trained_model(tmp_path).model.fc.weight, model.fc.weight)


def test_weights_of_another_architecture_name_the_differences(tmp_path) -> None:
    _export(tmp_path, create_model("resnet32"), name="resnet20")
    with pytest.raises(ResnetCifarError, match="do not fit resnet20: unexpected layer1.3"):
        load_trained_model(tmp_path)


def test_weights_of_another_class_count_name_the_shapes(tmp_path) -> None:
    _export(tmp_path, create_model("resnet20"), weights=create_model("resnet20", num_classes=100).state_dict())
    with pytest.raises(ResnetCifarError, match=r"fc.weight has shape \(100, 64\), resnet20 needs \(10, 64\)"):
        load_trained_model(tmp_path)


def test_checkpoint_round_trip(tmp_path) -> None:
    save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.arange(3)}, "epoch": 2, "history": [{"a": 1.0}]})
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and torch.equal(state["model"]["w"], torch.arange(3))


def test_checkpoint_that_runs_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": {}, "format_version": 1, "x": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ResnetCifarError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 50, b"just text\n"])
def test_broken_checkpoints_are_one_line_errors(tmp_path, content: bytes) -> None:
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(ResnetCifarError) as info:
        load_checkpoint(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_is_refused(tmp_path) -> None:
    save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.zeros(1000)}})
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ResnetCifarError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "last.pt")


def test_newer_checkpoint_format_asks_for_an_upgrade(tmp_path) -> None:
    torch.save({"model": {}, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(ResnetCifarError, match="upgrade resnet-cifar"):
        load_checkpoint(tmp_path / "new.pt")


def test_plain_pickle_is_not_a_checkpoint(tmp_path) -> None:
    (tmp_path / "p.pt").write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(ResnetCifarError):
        load_checkpoint(tmp_path / "p.pt")
