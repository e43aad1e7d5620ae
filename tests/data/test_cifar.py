"""CIFAR folders: reading, checksums, the restricted unpickler, the offline error and the verified download."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import os
import pickle
import runpy
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from resnet_cifar import ResnetCifarError
from resnet_cifar.data import cifar as cifar_module
from resnet_cifar.data import load_dataset
from resnet_cifar.data.cifar import safe_unpickle

SHARED_TOOL = Path(__file__).resolve().parents[3] / "shared/tools/cifar10_from_jpeg_tar.py"


def test_reads_cifar10_folder_and_warns_about_unofficial_sums(tmp_path, fake_cifar, capsys) -> None:
    fake_cifar(tmp_path)
    train = load_dataset("cifar10", "train", tmp_path)
    test = load_dataset("cifar10", "test", tmp_path)
    assert train.images.shape == (50, 3, 32, 32) and len(test) == 20
    assert train.class_names == [f"class{i}" for i in range(10)]
    notice = capsys.readouterr().err.strip().splitlines()
    assert "differ from the official cifar10 files" in notice[0]


def test_reads_cifar100_fine_labels(tmp_path, fake_cifar) -> None:
    fake_cifar(tmp_path, "cifar100", train_images=200)
    train = load_dataset("cifar100", "train", tmp_path)
    assert len(train.class_names) == 100 and int(train.labels.max()) == 99


def test_pixels_are_read_channel_major(tmp_path, fake_cifar) -> None:
    fake_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py/test_batch", "rb") as f:
        raw = pickle.load(f)["data"]
    test = load_dataset("cifar10", "test", tmp_path)
    assert test.images[3, 1, 2, 5] == raw[3, 1024 + 2 * 32 + 5]


def test_missing_folder_offline_is_one_clear_line(tmp_path, monkeypatch) -> None:
    spec = dataclasses.replace(cifar_module.CIFAR["cifar10"], url="http://127.0.0.1:9/none.tar.gz")
    monkeypatch.setitem(cifar_module.CIFAR, "cifar10", spec)
    with pytest.raises(ResnetCifarError) as info:
        load_dataset("cifar10", "train", tmp_path / "nowhere")
    message = str(info.value)
    assert "cannot download" in message and "cifar10-sample" in message and "\n" not in message


def test_missing_files_without_download_name_the_files(tmp_path, fake_cifar) -> None:
    fake_cifar(tmp_path)
    os.unlink(tmp_path / "cifar-10-batches-py/data_batch_3")
    with pytest.raises(ResnetCifarError, match="lacks data_batch_3"):
        load_dataset("cifar10", "train", tmp_path, download=False)


def test_pickle_that_runs_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(ResnetCifarError, match="refusing to load"):
        safe_unpickle(path)
    assert not marker.exists()


def test_truncated_batch_file_is_a_clear_error(tmp_path, fake_cifar) -> None:
    fake_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py/test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ResnetCifarError, match="not a readable CIFAR batch file"):
        load_dataset("cifar10", "test", tmp_path)


def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _archive_of(folder: Path, out: Path) -> str:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return hashlib.md5(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("right_md5", [True, False])
def test_download_is_verified_before_use(tmp_path, fake_cifar, monkeypatch, right_md5: bool) -> None:
    source = fake_cifar(tmp_path / "source")
    served = tmp_path / "served"
    served.mkdir()
    md5 = _archive_of(source / "cifar-10-batches-py", served / "cifar.tar.gz")
    server = _serve(served)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cifar.tar.gz"
        spec = dataclasses.replace(cifar_module.CIFAR["cifar10"], url=url,
                                   archive_md5=md5 if right_md5 else "0" * 32)
        monkeypatch.setitem(cifar_module.CIFAR, "cifar10", spec)
        target = tmp_path / "data"
        if right_md5:
            assert len(load_dataset("cifar10", "test", target)) == 20
        else:
            with pytest.raises(ResnetCifarError, match="not the official"):
                load_dataset("cifar10", "test", target)
            assert not (target / "cifar-10-batches-py").exists()
            assert not list(target.glob("*.part"))
    finally:
        server.shutdown()


def test_archive_with_unsafe_member_is_not_extracted_outside(tmp_path, monkeypatch) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    server = _serve(served)
    try:
        spec = dataclasses.replace(cifar_module.CIFAR["cifar10"], archive_md5=hashlib.md5(archive.read_bytes()).hexdigest(),
                                   url=f"http://127.0.0.1:{server.server_address[1]}/evil.tar.gz")
        monkeypatch.setitem(cifar_module.CIFAR, "cifar10", spec)
        with pytest.raises(ResnetCifarError):
            load_dataset("cifar10", "test", tmp_path / "data")
        assert not (tmp_path / "escaped.txt").exists()
    finally:
        server.shutdown()


@pytest.mark.skipif(not SHARED_TOOL.exists(), reason="../shared/tools is not beside the checkout")
def test_reads_files_pickled_the_way_python2_wrote_the_official_ones(tmp_path) -> None:
    # The shared tool writes byte strings as Python 2 did (the official files' format); use its writer.
    tool = runpy.run_path(str(SHARED_TOOL))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        tool["dump"]({b"batch_label": name.encode(), b"labels": list(range(10)),
                      b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
                      b"filenames": [f"{i}.png".encode() for i in range(10)]}, folder / name)
    tool["dump"]({b"label_names": [c.encode() for c in tool["CLASSES"]], b"num_vis": 3072}, folder / "batches.meta")
    train = load_dataset("cifar10", "train", tmp_path)
    assert len(train) == 50 and train.class_names == tool["CLASSES"] and train.labels[:3].tolist() == [0, 1, 2]
