"""Exported files handed to us by someone else: nothing in them runs code, a damaged one is refused in one line,
and an export never destroys the files that were there before (issue 34, items 1, 2, 6, 7, 9, 12-16, 20, 22)."""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnet_cifar.cli import main
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.inference.export import export
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.inference.pretrained import load_pretrained
from resnet_cifar.models.weights import pretrained_weights


class _RunsCode:
    """A pickle that, when loaded without restriction, creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exported")
    trained = load_pretrained("resnet20")
    return {suffix: export(trained, name, folder / f"r20.{suffix}").path
            for suffix, name in (("onnx", "onnx"), ("xml", "openvino"), ("pt2", "pt2"))}


def _copy_export(source: Path, folder: Path, name: str) -> Path:
    """The export at ``source`` and its companion files copied to ``folder/name``."""
    target = folder / name
    shutil.copy(source, target)
    companions = {".xml": [source.with_suffix(".bin")], ".pt2": [source.with_name(source.name + ".json")]}
    for companion in companions.get(source.suffix, []):
        if companion.exists():
            shutil.copy(companion, folder / (target.stem + ".bin" if companion.suffix == ".bin"
                                             else target.name + ".json"))
    return target


def _rewrite_pt2(source: Path, target: Path, replace: dict[str, bytes], add: dict[str, bytes] | None = None) -> Path:
    """A copy of the archive ``source`` with entries (named below its top folder) replaced or added, its
    description's checksum made to fit (as an attacker would)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as changed:
        for entry in original.infolist():
            top, _, inner = entry.filename.partition("/")
            changed.writestr(entry.filename, replace.get(inner, original.read(entry)))
        for name, data in (add or {}).items():
            changed.writestr(f"{top}/{name}", data)
    described = json.loads(source.with_name(source.name + ".json").read_text())
    from resnet_cifar.files import file_sha256
    described["archive_sha256"] = file_sha256(target)
    target.with_name(target.name + ".json").write_text(json.dumps(described))
    return target


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_a_pt2_whose_sample_inputs_run_code_is_refused(exported, tmp_path, capsys, make_image) -> None:
    marker = tmp_path / "ran"
    evil = io.BytesIO()
    torch.save(_RunsCode(marker), evil)
    path = _rewrite_pt2(exported["pt2"], tmp_path / "evil.pt2", {"data/sample_inputs/model.pt": evil.getvalue()})
    image = str(make_image(tmp_path / "cat.png"))
    assert main(["predict", str(path), image]) == 2
    assert "holds pickled objects other than tensors" in _one_line_error(capsys)
    from resnet_cifar.serve.model import load_served_model
    with pytest.raises(ResnetCifarError, match="is refused"):
        load_served_model(str(path), "auto")
    assert not marker.exists()


def test_a_pt2_whose_pickled_weights_run_code_is_refused(exported, tmp_path) -> None:
    marker = tmp_path / "ran"
    name = "data/weights/weight_1"
    with zipfile.ZipFile(exported["pt2"]) as archive:
        config = json.loads(archive.read("r20/data/weights/model_weights_config.json"))
    for payload in config["config"].values():
        if payload["path_name"] == "weight_1":
            payload["use_pickle"] = True
    legacy_pickle = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # protocol 0: not a zip, a bare pickle
    path = _rewrite_pt2(exported["pt2"], tmp_path / "evil.pt2", {
        name: legacy_pickle, "data/weights/model_weights_config.json": json.dumps(config).encode()})
    with pytest.raises(ResnetCifarError, match="is a pickle that is not a torch.save file"):
        load_trained_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("change,message", [
    (("target", "torch.ops.aten.relu_.default", "torch.serialization.os.system"), "not an ATen operator"),
    (("expr", "Symbol('s77', positive=True, integer=True)", "__import__('os').system('true')"), "shape expression"),
    (("add", "data/aotinductor/model/model.so", b"\x7fELF"), "compiled code"),
], ids=["node-target", "sympy-expression", "aotinductor-library"])
def test_a_pt2_that_would_call_python_or_native_code_is_refused(exported, tmp_path, change, message) -> None:
    kind, old, new = change
    graph_name = "models/model.json"
    with zipfile.ZipFile(exported["pt2"]) as archive:
        graph = archive.read(f"r20/{graph_name}").decode()
    if kind == "add":
        path = _rewrite_pt2(exported["pt2"], tmp_path / "evil.pt2", {}, {old: new})
    else:
        symbol = json.dumps(old)[1:-1] if kind == "expr" else old
        assert symbol in graph or old in graph
        changed = graph.replace(old, new) if old in graph else graph.replace(symbol, json.dumps(new)[1:-1])
        path = _rewrite_pt2(exported["pt2"], tmp_path / "evil.pt2", {graph_name: changed.encode()})
    with pytest.raises(ResnetCifarError, match=message):
        load_trained_model(path)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_the_weights_are_refused_naming_the_file(exported, tmp_path) -> None:
    onnx_copy = _copy_export(exported["onnx"], tmp_path, "m.onnx")
    proto = onnx.load(str(onnx_copy))
    weights = proto.graph.initializer[0].raw_data
    offset = onnx_copy.read_bytes().index(weights[:64]) + 40  # a byte inside the first weight tensor
    _flip_byte(onnx_copy, offset)
    xml_copy = _copy_export(exported["xml"], tmp_path, "m.xml")
    _flip_byte(xml_copy.with_suffix(".bin"), xml_copy.with_suffix(".bin").stat().st_size // 2)
    pt2_copy = _copy_export(exported["pt2"], tmp_path, "m.pt2")
    _flip_byte(pt2_copy, pt2_copy.stat().st_size // 2)
    for path in (onnx_copy, xml_copy, pt2_copy):
        with pytest.raises(ResnetCifarError, match=f"{path.name} is damaged: the SHA-256 of"):
            load_trained_model(path)


def test_an_untouched_export_records_and_passes_its_checksums(exported) -> None:
    props = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    assert len(props["weights_sha256"]) == 64
    assert b"<weights_sha256 value=" in exported["xml"].read_bytes()
    assert len(json.loads(exported["pt2"].with_name("r20.pt2.json").read_text())["archive_sha256"]) == 64
    for path in exported.values():
        assert load_trained_model(path).class_names[0] == "airplane"


def test_a_pt2_export_keeps_the_run_folders_model_json(tmp_path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(pretrained_weights("resnet20").parent, folder)
    before = (folder / "model.json").read_bytes()
    assert main(["export", str(folder), "--format", "pt2"]) == 0
    assert (folder / "model.json").read_bytes() == before
    assert (folder / "model.pt2.json").is_file()
    assert load_trained_model(folder).info["model"] == "resnet20"  # eval RUN still works
    assert load_trained_model(folder / "model.pt2").runtime == "torch"
    assert main(["export", str(folder), "--format", "pt2", "--out", str(tmp_path / "ex" / "m.json")]) == 0
    assert (tmp_path / "ex" / "m.json.json").is_file()  # the program and its description never share a name


@pytest.mark.parametrize("suffix", ["onnx", "xml"])
def test_a_failed_export_leaves_the_earlier_file_whole(exported, tmp_path, monkeypatch, suffix) -> None:
    from resnet_cifar.inference import export as export_module

    target = _copy_export(exported[suffix], tmp_path, f"m.{suffix}")
    files = [target, target.with_suffix(".bin")] if suffix == "xml" else [target]
    before = [path.read_bytes() for path in files]
    monkeypatch.setattr(export_module, "load_runner",
                        lambda format_name, path: lambda images: np.zeros((len(images), 10), np.float32) + 5)
    with pytest.raises(ResnetCifarError, match="differs from PyTorch"):
        export(load_pretrained("resnet20"), "onnx" if suffix == "onnx" else "openvino", target)
    assert [path.read_bytes() for path in files] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)  # no scratch left


def test_openvino_failing_to_write_is_one_line_and_keeps_the_old_file(exported, tmp_path, monkeypatch,
                                                                      capsys) -> None:
    import openvino

    target = _copy_export(exported["xml"], tmp_path, "m.xml")
    before = target.with_suffix(".bin").read_bytes()

    def cannot_write(*args, **kwargs):  # what OpenVINO raises for a folder it may not write in
        raise RuntimeError("Exception from src/core/src/pass/serialize.cpp:1252:\nCan't open bin file: \"m.bin\"\n")

    monkeypatch.setattr(openvino, "save_model", cannot_write)
    assert main(["export", "--pretrained", "resnet20", "--format", "openvino", "--out", str(target)]) == 2
    assert "cannot write" in _one_line_error(capsys) and target.with_suffix(".bin").read_bytes() == before


def test_a_read_only_bin_is_replaced_not_written_into(exported, tmp_path) -> None:
    target = _copy_export(exported["xml"], tmp_path, "m.xml")
    target.with_suffix(".bin").chmod(0o444)
    assert main(["export", "--pretrained", "resnet20", "--format", "openvino", "--out", str(target)]) == 0
    assert load_trained_model(target).runtime == "openvino"


def _with_metadata(source: Path, target: Path, **changes: str) -> Path:
    proto = onnx.load(str(source))
    for entry in proto.metadata_props:
        if entry.key in changes:
            entry.value = changes[entry.key]
    onnx.save(proto, str(target))
    return target


def test_sizes_and_class_counts_in_metadata_are_checked_before_use(exported, tmp_path, make_image, capsys) -> None:
    huge = _with_metadata(exported["onnx"], tmp_path / "huge.onnx", input_size="[3, 100000, 100000]")
    with pytest.raises(ResnetCifarError, match=r"input_size \[3, 100000, 100000\] is larger than"):
        load_trained_model(huge)
    three = _with_metadata(exported["onnx"], tmp_path / "three.onnx", class_names='["a", "b", "c"]')
    image = str(make_image(tmp_path / "cat.png"))
    assert main(["predict", str(three), image]) == 2
    assert "names 3 classes, but the model answers (10,) scores" in _one_line_error(capsys)
    other_size = _with_metadata(exported["onnx"], tmp_path / "big.onnx", input_size="[3, 64, 64]")
    with pytest.raises(ResnetCifarError, match="does not take an image of the input size"):
        load_trained_model(other_size)


def test_exported_files_are_not_sources_of_weights(exported, tmp_path, capsys) -> None:
    assert main(["export", str(exported["onnx"]), "--format", "pt2", "--out", str(tmp_path / "m.pt2")]) == 2
    assert "is an exported file, which holds no PyTorch weights to export" in _one_line_error(capsys)
    from resnet_cifar.models import create_model
    from resnet_cifar.training.finetune import initialise_from
    with pytest.raises(ResnetCifarError, match="holds no PyTorch weights to start training from"):
        initialise_from(create_model("resnet20"), exported["onnx"], "resnet20", {})


def test_a_superscript_batch_is_a_one_line_error(capsys) -> None:
    assert main(["export", "--pretrained", "resnet20", "--format", "pt2", "--batch", "\u00b2"]) == 2
    assert "--batch must be a positive integer or 'dynamic', got '\u00b2'" in _one_line_error(capsys)


def test_int8_pt2_is_refused_before_looking_for_images(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--pretrained", "resnet20", "--format", "pt2", "--int8"]) == 2
    assert "give --format openvino or --format onnx" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []  # no ./data made, nothing downloaded


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_a_damaged_pt2_is_one_line_without_pytorchs_logged_traceback(exported, tmp_path, capsys, make_image,
                                                                       damage) -> None:
    path = _copy_export(exported["pt2"], tmp_path, "m.pt2")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    described = json.loads(path.with_name("m.pt2.json").read_text())
    described.pop("archive_sha256")  # an export from before checksums: the archive itself must be refused
    path.with_name("m.pt2.json").write_text(json.dumps(described))
    assert main(["predict", str(path), str(make_image(tmp_path / "cat.png"))]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("resnet-cifar: error:")] == err.splitlines()[-1:]
    assert "Traceback" not in err and "is not a loadable torch.export program" in err


@pytest.mark.parametrize("damage,message", [
    ("no-bin", r"m.bin, the weights of m.xml, is missing"),
    ("cut-bin", r"its weights m.bin are truncated or belong to another model"),
    ("empty-xml", r"m.xml is empty"),
    ("cut-xml", r"the .xml is truncated or not valid XML"),
    ("not-xml", r"is not an OpenVINO IR"),
])
def test_openvino_load_errors_name_the_cause(exported, tmp_path, damage, message) -> None:
    path = _copy_export(exported["xml"], tmp_path, "m.xml")
    text = path.read_text()
    path.write_text(text.replace('<weights_sha256 value="', '<other value="'))  # no checksum: OpenVINO decides
    weights = path.with_suffix(".bin")
    if damage == "no-bin":
        weights.unlink()
    elif damage == "cut-bin":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "empty-xml":
        path.write_text("")
    elif damage == "cut-xml":
        path.write_text(text[: len(text) // 2])
    else:
        path.write_bytes(b"\x00\x01 garbage")
    with pytest.raises(ResnetCifarError, match=message):
        load_trained_model(path)


def _with_member(source: Path, target: Path, name: str, zeros: int) -> Path:
    """A copy of the archive ``source`` with a compressed member of ``zeros`` zero bytes (small on disk, large
    unpacked) written in place of, or beside, its entries; its description's checksum made to fit."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as changed:
        top = original.infolist()[0].filename.partition("/")[0]
        for entry in original.infolist():
            if entry.filename != f"{top}/{name}":
                changed.writestr(entry.filename, original.read(entry))
        info = zipfile.ZipInfo(f"{top}/{name}")
        info.compress_type = zipfile.ZIP_DEFLATED
        with changed.open(info, "w", force_zip64=True) as member:
            block = bytes(1 << 24)
            for _ in range(zeros // len(block)):
                member.write(block)
    described = json.loads(source.with_name(source.name + ".json").read_text())
    from resnet_cifar.files import file_sha256
    described["archive_sha256"] = file_sha256(target)
    target.with_name(target.name + ".json").write_text(json.dumps(described))
    return target


@pytest.mark.parametrize("name,message", [
    ("data/weights/weight_bomb", "is no tensor of the program"),
    ("data/weights/weight_57", "holds more than the 2,560 bytes of its tensor"),
])
def test_a_pt2_member_larger_than_its_tensor_or_not_one_is_refused_without_unpacking_it(exported, tmp_path, name,
                                                                                        message) -> None:
    import subprocess
    import sys

    path = _with_member(exported["pt2"], tmp_path / "bomb.pt2", name, 3 * 1024 ** 3 // 2)  # 1.5 GiB of zeros
    assert path.stat().st_size < 16 * 1024 ** 2
    # The child's own peak (VmHWM): getrusage's ru_maxrss would keep this test process's peak across exec.
    probe = ("import re, sys\nfrom pathlib import Path\nfrom resnet_cifar.inference.loading import load_trained_model\n"
             "from resnet_cifar.errors import ResnetCifarError\n"
             "try:\n    load_trained_model(sys.argv[1])\nexcept ResnetCifarError as error:\n    print(error)\n"
             "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=300)
    refusal, peak_kib = done.stdout.strip().splitlines()
    assert message in refusal and "is refused" in refusal, done.stdout + done.stderr
    assert int(peak_kib) < 1024 ** 2, peak_kib  # under 1 GiB: the 1.5 GiB member is never held


HIDDEN_IMPORT = (b"\x80\x04\x8c\x02os\x8c\x06system\x4b\x05\x30\x93\x8c\x04true\x85R.",  # push, pop, STACK_GLOBAL
                 b"\x80\x04(0\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R.")  # a mark popped first


@pytest.mark.parametrize("pickle_bytes", HIDDEN_IMPORT, ids=["push-pop", "mark-pop"])
@pytest.mark.parametrize("entry", ["data/weights/weight_1", "data/sample_inputs/model.pt"])
def test_a_pickle_hiding_its_import_behind_stack_moves_is_refused_in_one_line(exported, tmp_path, capsys, make_image,
                                                                             pickle_bytes, entry) -> None:
    path = _rewrite_pt2(exported["pt2"], tmp_path / "evil.pt2", {entry: pickle_bytes})
    assert main(["predict", str(path), str(make_image(tmp_path / "cat.png"))]) == 2
    assert "is a pickle that is not a torch.save file" in _one_line_error(capsys)
