"""A corpus of bad inputs, each fed to the command line (its in-process entry point) and to the Python API.

Every case must end in one ``resnet-cifar: error:`` line and exit code 2 (the API: a ``ResnetCifarError``),
never a traceback, and must leave the files already there untouched.
"""
from __future__ import annotations

import functools
import http.server
import os
import pickle
import socketserver
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_cifar import ResnetCifarError, TrainConfig, create_model, evaluate, load_dataset, predict, train
from resnet_cifar.cli import main
from resnet_cifar.core.checkpoint import export_model, save_checkpoint
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.data.cifar import CIFAR

SAMPLE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cli(capsys, *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    return code, "\n".join(line for line in err.splitlines() if not line.startswith("resnet-cifar: notice:"))


def _assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("resnet-cifar: error:"), err
    assert fragment in err and "Traceback" not in err


def _snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file's bytes (the run folder's lock file aside: creating it overwrites nothing)."""
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds none (decompression-bomb and zero-size cases)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """Untrained ResNet-20 weights exported for the sample's classes, plus an earlier eval.json."""
    folder = tmp_path_factory.mktemp("model")
    info = model_info("resnet20", {}, SAMPLE_CLASSES, (3, 32, 32), [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    export_model(folder, create_model("resnet20").state_dict(), info)
    (folder / "eval.json").write_text('{"earlier": "results"}')
    return folder


# ---- checkpoints and weights -------------------------------------------------------------------------

class _Exploit:
    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoint_cases(folder: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    good = create_model("resnet20").state_dict()
    info = model_info("resnet20", {}, SAMPLE_CLASSES, (3, 32, 32), [0.5] * 3, [0.25] * 3)
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, fragment: str) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cases[name] = (path, fragment)
        return path

    save_checkpoint(folder / "whole.pt", {"model": good, "model_info": info})
    whole = (folder / "whole.pt").read_bytes()
    case("truncated.pt", "not a loadable checkpoint").write_bytes(whole[: len(whole) // 2])
    case("empty.pt", "not a loadable checkpoint").write_bytes(b"")
    case("random.pt", "not a loadable checkpoint").write_bytes(np.random.default_rng(0).bytes(4096))
    case("text.pt", "not a loadable checkpoint").write_text("epoch,loss\n1,2.3\n")
    torch.save({"format_version": 99, "model": good, "model_info": info}, case("newer.pt", "upgrade resnet-cifar"))
    _Exploit.marker = marker
    torch.save({"format_version": 1, "model": good, "x": _Exploit()}, case("exploit.pt", "not a loadable checkpoint"))
    export_model(case("other_arch/model.safetensors", "do not fit resnet20: unexpected layer1.3").parent,
                 create_model("resnet32").state_dict(), info)
    export_model(case("other_classes/model.safetensors", "fc.weight has shape (100, 64)").parent,
                 create_model("resnet20", num_classes=100).state_dict(), info)
    newer = case("newer_json/model.safetensors", "upgrade resnet-cifar").parent
    export_model(newer, good, info)
    (newer / "model.json").write_text('{"format_version": 7}')
    no_json = case("no_json/model.safetensors", "model.json is missing").parent
    export_model(no_json, good, info)
    (no_json / "model.json").unlink()
    case("bad_weights/model.safetensors", "not a readable safetensors file").write_bytes(b"\x00" * 100)
    (folder / "bad_weights/model.json").write_text((newer.parent / "other_arch/model.json").read_text())
    save_checkpoint(case("no_info.pt", "holds no model description"), {"model": good})
    torch.save({"model": good}, case("foreign.pt", "no format version"))
    for name, change, fragment in (("few_names", {"class_names": ["cat", "dog"]}, "class_names must be 10 names"),
                                   ("big_size", {"input_size": "big"}, "input_size 'big' is not"),
                                   ("text_mean", {"mean": "abc"}, "mean 'abc' is not a list of numbers"),
                                   ("zero_std", {"std": [0.0, 0.25, 0.25]}, "must be above 0")):
        export_model(case(f"{name}/model.safetensors", fragment).parent, good, {**info, **change})
    nan = {key: value.clone() for key, value in good.items()}
    nan["fc.bias"][0] = float("nan")
    export_model(case("nan_weights/model.safetensors", "hold NaN or infinite values (fc.bias)").parent, nan, info)
    return cases


def test_bad_checkpoints_and_weights(tmp_path, capsys) -> None:
    marker = tmp_path / "exploit-ran"
    cases = _checkpoint_cases(tmp_path / "corpus", marker)
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval.json").write_text("earlier")
    before = _snapshot(tmp_path / "corpus", out)
    for name, (path, fragment) in cases.items():
        code, err = _cli(capsys, "eval", str(path), "--dataset", "cifar10-sample", "--out", str(out))
        _assert_one_line_error(code, err, fragment)
        with pytest.raises(ResnetCifarError, match=None) as info:
            evaluate(path, dataset="cifar10-sample", out_dir=out)
        assert fragment in str(info.value), name
    assert not marker.exists(), "a pickled payload ran"
    assert _snapshot(tmp_path / "corpus", out) == before


def test_resume_from_a_damaged_checkpoint(tmp_path, capsys) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"\x80\x02garbage")
    before = _snapshot(folder)
    code, err = _cli(capsys, "train", "--resume", str(folder))
    _assert_one_line_error(code, err, "not a loadable checkpoint")
    with pytest.raises(ResnetCifarError, match="not a loadable checkpoint"):
        train(resume=folder)
    code, err = _cli(capsys, "train", "--resume", str(tmp_path / "nothing-here"))
    _assert_one_line_error(code, err, "holds no run to resume")
    assert _snapshot(folder) == before


def test_resume_from_checkpoints_that_do_not_fit(tmp_path, capsys) -> None:
    folder = train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=250, device="cpu",
                               out=str(tmp_path / "run")), quiet=True, stop_after=1)
    state = torch.load(folder / "last.pt", weights_only=True)
    for change, fragment in ((lambda s: s.pop("config"), "is not a training checkpoint (it lacks config)"),
                             (lambda s: s["model"].update({"fc.weight": torch.zeros(3, 3)}),
                              "does not fit the run its own saved settings describe")):
        broken = {**state, "model": dict(state["model"])}
        change(broken)
        save_checkpoint(folder / "last.pt", broken)
        before = _snapshot(folder)
        code, err = _cli(capsys, "train", "--resume", str(folder))
        _assert_one_line_error(code, err, fragment)
        assert _snapshot(folder) == before


def test_file_system_refusals_are_one_line(model_dir, tmp_path, capsys) -> None:
    (tmp_path / "a_file").write_text("mine")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "run"):
        code, err = _cli(capsys, "train", "--dataset", "cifar10-sample", "--device", "cpu", "--out", str(out))
        _assert_one_line_error(code, err, "a_file")
    code, err = _cli(capsys, "eval", str(model_dir), "--dataset", "cifar10-sample", "--out", str(tmp_path / "a_file"))
    _assert_one_line_error(code, err, "a_file")
    assert (tmp_path / "a_file").read_text() == "mine"


def test_float_tiffs_are_scaled_and_unreadable_files_are_not_called_incomplete(tmp_path) -> None:
    from resnet_cifar.data.images import decode_image

    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), "F").save(tmp_path / "float.tif")
    assert 120 <= int(decode_image(tmp_path / "float.tif", (8, 8)).float().mean()) <= 135  # grey, not black
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ResnetCifarError, match=r"cannot read .*folder.png \(Is a directory\)"):
        decode_image(tmp_path / "folder.png", (8, 8))


# ---- datasets ------------------------------------------------------------------------------------------

def _rewrite_batch(path: Path, change: Callable[[dict], None]) -> None:
    with open(path, "rb") as f:
        content = pickle.load(f)
    change(content)
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)


def _dataset_cases(root: Path, fake_cifar, make_image) -> dict[str, tuple[list[str], str]]:
    """name -> (dataset arguments, expected fragment)."""
    cases: dict[str, tuple[list[str], str]] = {}

    def cifar(name: str) -> Path:
        return fake_cifar(root / name) / "cifar-10-batches-py"

    cases["missing folder"] = (["--dataset", "cifar10", "--data-dir", str(root / "none")], "there is no")
    os.unlink(cifar("missing_file") / "data_batch_2")
    cases["missing batch file"] = (["--dataset", "cifar10", "--data-dir", str(root / "missing_file")],
                                   "lacks data_batch_2")
    truncated = cifar("truncated") / "test_batch"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    cases["truncated batch"] = (["--dataset", "cifar10", "--data-dir", str(root / "truncated")],
                                "not a readable CIFAR batch file")
    tampered = cifar("tampered") / "test_batch"
    data = bytearray(tampered.read_bytes())
    data[2:40] = b"X" * 38  # the pickle's structure, not only its pixels
    tampered.write_bytes(bytes(data))
    cases["tampered batch"] = (["--dataset", "cifar10", "--data-dir", str(root / "tampered")],
                               "not a readable CIFAR batch file")
    _rewrite_batch(cifar("shapes") / "test_batch", lambda c: c.update(data=c["data"][:, :1000]))
    cases["wrong shapes"] = (["--dataset", "cifar10", "--data-dir", str(root / "shapes")], "expected uint8 N x 3072")
    _rewrite_batch(cifar("labels") / "test_batch", lambda c: c.update(labels=[12] * len(c["labels"])))
    cases["labels out of range"] = (["--dataset", "cifar10", "--data-dir", str(root / "labels")],
                                    "labels must lie in 0..9")
    _rewrite_batch(cifar("float_labels") / "test_batch", lambda c: c.update(labels=[0.5] * len(c["labels"])))
    cases["fractional labels"] = (["--dataset", "cifar10", "--data-dir", str(root / "float_labels")],
                                  "not whole numbers")
    _rewrite_batch(cifar("str_labels") / "test_batch", lambda c: c.update(labels=["cat"] * len(c["labels"])))
    cases["labels as text"] = (["--dataset", "cifar10", "--data-dir", str(root / "str_labels")], "not whole numbers")
    _rewrite_batch(cifar("int_names") / "batches.meta", lambda c: c.update(label_names=10))
    cases["class names an int"] = (["--dataset", "cifar10", "--data-dir", str(root / "int_names")],
                                   "no list of class names")
    # ~40 bytes that ask numpy for an array of 2**60 elements, and a pickle claiming a 2**62-byte string
    (cifar("huge_array") / "test_batch").write_bytes(b"\x80\x02cnumpy\nndarray\nq\x00J\x00\x00\x00\x40J\x00\x00"
                                                     b"\x00\x40\x86q\x01\x85q\x02Rq\x03.")
    cases["a tiny file asking for a huge array"] = (["--dataset", "cifar10", "--data-dir", str(root / "huge_array")],
                                                    "larger than any in a CIFAR batch")
    (cifar("huge_bytes") / "test_batch").write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc.")
    cases["a length claim past the file"] = (["--dataset", "cifar10", "--data-dir", str(root / "huge_bytes")],
                                             "not a readable CIFAR batch file")
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / "empty_folder" / split / name).mkdir(parents=True)
        (root / "one_class" / split / "cats").mkdir(parents=True)
        make_image(root / "one_class" / split / "cats" / "a.png")
    cases["image folder without images"] = (["--dataset", "folder", "--data-dir", str(root / "empty_folder")],
                                            "holds no images")
    cases["image folder with one class"] = (["--dataset", "folder", "--data-dir", str(root / "one_class")],
                                            "at least 2")
    return cases


def test_bad_datasets(tmp_path, fake_cifar, make_image, capsys) -> None:
    cases = _dataset_cases(tmp_path / "data", fake_cifar, make_image)
    for index, (name, (args, fragment)) in enumerate(cases.items()):
        out = tmp_path / f"run{index}"
        code, err = _cli(capsys, "train", *args, "--no-download", "--device", "cpu", "--out", str(out))
        _assert_one_line_error(code, err, fragment)
        assert not out.exists(), f"{name}: a failed start left {out} behind"
        dataset, data_dir = args[1], args[3]
        with pytest.raises(ResnetCifarError) as info:
            load_dataset(dataset, "test", data_dir, download=False)
        assert fragment in str(info.value), name


def test_evaluating_on_a_dataset_with_other_classes_is_refused(model_dir, tmp_path, fake_cifar, capsys) -> None:
    fake_cifar(tmp_path)
    before = _snapshot(model_dir)
    code, err = _cli(capsys, "eval", str(model_dir), "--dataset", "cifar10", "--data-dir", str(tmp_path))
    _assert_one_line_error(code, err, "evaluate on the dataset it was trained for")
    assert _snapshot(model_dir) == before


def test_checksum_mismatch_alone_loads_with_a_notice_naming_only_the_files_that_differ(tmp_path, fake_cifar, capsys,
                                                                                      monkeypatch) -> None:
    import dataclasses
    import hashlib

    from resnet_cifar.data import cifar

    fake_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    test_sum = hashlib.md5((folder / "test_batch").read_bytes()).hexdigest()
    official = CIFAR["cifar10"]
    monkeypatch.setitem(cifar.CIFAR, "cifar10", dataclasses.replace(official, test_files={"test_batch": test_sum}))
    assert len(load_dataset("cifar10", "test", tmp_path)) == 20
    notice = capsys.readouterr().err
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, batches.meta under" in notice
    assert "differ from the official cifar10 files" in notice and "test_batch" not in notice


# ---- images and URLs -------------------------------------------------------------------------------------

class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow.png":
            time.sleep(3)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def images(tmp_path_factory, make_image) -> Path:
    folder = tmp_path_factory.mktemp("images")
    (folder / "not_image.png").write_text("definitely not a picture")
    for name in ("truncated.png", "truncated.jpg"):
        data = make_image(folder / name, size=(64, 64)).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 3])
    (folder / "zero.png").write_bytes(_png_header(0, 0))
    (folder / "bomb.png").write_bytes(_png_header(30_000, 30_000))
    (folder / "page.html").write_text("<html><body>a web page</body></html>")
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(folder / "sixteen_bit.png")
    make_image(folder / "cmyk.jpg", mode="CMYK")
    make_image(folder / "palette.png", mode="P")
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    make_image(folder / "slow.png")
    return folder


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the client gave up on /slow.png before the answer: expected here


@pytest.fixture(scope="module")
def server(images):
    handler = functools.partial(_SlowHandler, directory=str(images))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


BAD_IMAGES = {"not_image.png": "not an image", "truncated.png": "cannot be decoded",
              "truncated.jpg": "cannot be decoded", "zero.png": "not an image", "bomb.png": "too large to decode"}


def test_bad_images(model_dir, images, capsys) -> None:
    before = _snapshot(model_dir)
    for name, fragment in BAD_IMAGES.items():
        code, err = _cli(capsys, "predict", str(model_dir), str(images / name))
        _assert_one_line_error(code, err, fragment)
        with pytest.raises(ResnetCifarError, match=fragment):
            predict(model_dir, [str(images / name)])
    assert _snapshot(model_dir) == before


@pytest.mark.parametrize("name", ["sixteen_bit.png", "cmyk.jpg", "palette.png", "animated.gif"])
def test_unusual_but_valid_images_are_classified(model_dir, images, capsys, name: str) -> None:
    code, _ = _cli(capsys, "predict", str(model_dir), str(images / name), "--top-k", "2")
    assert code == 0
    assert len(predict(model_dir, [str(images / name)], top_k=2)[0]["predictions"]) == 2


def test_bad_urls(model_dir, server, capsys) -> None:
    cases = {f"{server}/page.html": "not an image", f"{server}/slow.png": "cannot fetch",
             "http://127.0.0.1:1/closed.png": "cannot fetch", "ftp://127.0.0.1/x.png": "only http:// and https://",
             "file:///etc/hostname": "only http:// and https://"}
    for url, fragment in cases.items():
        code, err = _cli(capsys, "predict", str(model_dir), url, "--timeout", "1")
        _assert_one_line_error(code, err, fragment)
        with pytest.raises(ResnetCifarError, match=fragment):
            predict(model_dir, [url], timeout=1)


# ---- options ---------------------------------------------------------------------------------------------

_WITHOUT_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA has this device")
OPTION_CASES = [
    (["--epochs", "0"], {"epochs": 0}, "--epochs must be a positive integer"),
    (["--epochs", "-3"], {"epochs": -3}, "--epochs must be a positive integer"),
    (["--batch-size", "0"], {"batch_size": 0}, "--batch-size must be a positive integer"),
    (["--lr", "0"], {"lr": 0.0}, "--lr must be a positive number"),
    (["--lr", "-0.1"], {"lr": -0.1}, "--lr must be a positive number"),
    (["--model", "resnet19"], {"model": "resnet19"}, "unknown model 'resnet19'"),
    (["--optimizer", "rmsprop"], {"optimizer": "rmsprop"}, "rmsprop"),
    (["--schedule", "exponential"], {"schedule": "exponential"}, "exponential"),
    pytest.param(["--device", "cuda"], {"device": "cuda"}, "no CUDA GPU is visible", marks=_WITHOUT_CUDA),
    pytest.param(["--amp", "fp16"], {"amp": "fp16"}, "--amp fp16 needs a GPU", marks=_WITHOUT_CUDA),
    (["--seed", str(2**64)], {"seed": 2**64}, "--seed must be an integer from 0 to"),
    (["--crop-padding", "1000"], {"crop_padding": 1000}, "--crop-padding must be at most the image side"),
    (["--cutout", "100000"], {"cutout": 100000}, "--cutout must be at most the image side"),
    (["--model", "wrn-28-10", "--shortcut", "A"], {"model": "wrn-28-10", "model_options": {"shortcut": "A"}},
     "wrn-28-10 takes no option shortcut"),
    (["--model", "wrn-16-8", "--dropout", "1.5"], {"model": "wrn-16-8", "model_options": {"dropout": 1.5}},
     "dropout must be a probability in [0, 1), got 1.5"),
    (["--model", "wrn-17-8"], {"model": "wrn-17-8"}, "wrn-17-8 is no Wide ResNet: the depth must be 6n+4"),
    (["--model", "resnet9", "--se"], {"model": "resnet9", "model_options": {"se": True}}, "resnet9 takes no option se"),
    (["--bias-lr-scale", "0"], {"bias_lr_scale": 0.0}, "--bias-lr-scale must be a positive number"),
    (["--no-train-norm-scale", "--zero-init-residual"],
     {"train_norm_scale": False, "model_options": {"zero_init_residual": True}},
     "--zero-init-residual starts BatchNorm scales at 0, which --no-train-norm-scale would keep there"),
    (["--pad-mode", "reflect", "--crop-padding", "32"], {"pad_mode": "reflect", "crop_padding": 32},
     "--pad-mode reflect needs --crop-padding below the image side (32)"),
    (["--tta", "rotate"], {"tta": "rotate"}, "rotate"),
    (["--flip", "vertical"], {"flip": "vertical"}, "vertical"),
]


@pytest.mark.parametrize("args,settings,fragment", OPTION_CASES,
                         ids=[" ".join(c.values[0] if hasattr(c, "values") else c[0]) for c in OPTION_CASES])
def test_bad_options(tmp_path, capsys, args: list[str], settings: dict, fragment: str) -> None:
    existing = tmp_path / "run"
    existing.mkdir()
    (existing / "config.json").write_text('{"an": "earlier run"}')
    before = _snapshot(existing)
    code, err = _cli(capsys, "train", "--dataset", "cifar10-sample", "--device", "cpu", "--out", str(existing), *args)
    _assert_one_line_error(code, err, fragment)
    with pytest.raises(ResnetCifarError, match=None) as info:
        train(TrainConfig(**{"dataset": "cifar10-sample", "device": "cpu", "out": str(existing), **settings}))
    assert fragment in str(info.value)
    assert _snapshot(existing) == before


class _MisbehavingHTTP(socketserver.BaseRequestHandler):
    """Answers that break HTTP in the ways servers and proxies do; every loop is bounded (at most 8 s)."""

    def handle(self) -> None:
        path = self.request.recv(4096).split(b" ")[1].decode()
        send = self.request.sendall
        if path == "/trickle-body.png":
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            self._trickle(b"x" * 8)
        elif path == "/trickle-headers.png":
            send(b"HTTP/1.1 200 OK\r\n")
            self._trickle(b"X-Slow: aaaaaa")
        elif path == "/not-http.png":
            send(b"hello, this is not HTTP\r\n")
        elif path == "/broken-chunks.png":
            send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc")
        elif path == "/to-ftp.png":
            send(b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x.png\r\nContent-Length: 0\r\n\r\n")
        elif path == "/to-bad-port.png":
            send(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:port/x.png\r\nContent-Length: 0\r\n\r\n")
        elif path == "/loop.png":
            send(b"HTTP/1.1 302 Found\r\nLocation: /loop.png\r\nContent-Length: 0\r\n\r\n")
        elif path.startswith("/chain-"):  # /chain-31.png -> /chain-30.png -> ... -> /chain-0.png
            step = int(path[len("/chain-"):-len(".png")])
            send(f"HTTP/1.1 302 Found\r\nLocation: /chain-{max(step - 1, 0)}.png\r\nContent-Length: 0\r\n\r\n"
                 .encode())
        elif path == "/long-line.png":
            send(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")

    def _trickle(self, data: bytes) -> None:
        for byte in data:
            try:
                self.request.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(1)


@pytest.fixture(scope="module")
def bad_server():
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _MisbehavingHTTP)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_misbehaving_servers_get_one_line_within_the_timeout(model_dir, bad_server, capsys) -> None:
    cases = {"/trickle-body.png": "within --timeout 1 s", "/trickle-headers.png": "within --timeout 1 s",
             "/not-http.png": "not a valid HTTP answer", "/broken-chunks.png": "cannot fetch",
             "/to-ftp.png": "redirected to ftp://127.0.0.1/x.png, which is not an http(s) URL",
             "/to-bad-port.png": "cannot fetch", "/long-line.png": "not a valid HTTP answer",
             "/loop.png": "too many redirects (a loop, or a chain of more than 10)",
             "/chain-31.png": "too many redirects (a loop, or a chain of more than 10)"}
    for path, fragment in cases.items():
        start = time.monotonic()
        code, err = _cli(capsys, "predict", str(model_dir), bad_server + path, "--timeout", "1")
        _assert_one_line_error(code, err, fragment)
        assert time.monotonic() - start < 4, path  # the whole request is bounded, not each read
    code, err = _cli(capsys, "predict", str(model_dir), "http://[::1/x.png")
    _assert_one_line_error(code, err, "is not a valid URL")


@pytest.mark.parametrize("timeout", ["inf", "0", "-1", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_named(model_dir, images, capsys, timeout) -> None:
    code, err = _cli(capsys, "predict", str(model_dir), str(images / "palette.png"), "--timeout", timeout)
    _assert_one_line_error(code, err, "--timeout must be a number of seconds")


def test_special_files_are_never_read(model_dir, tmp_path, capsys) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    code, err = _cli(capsys, "predict", str(model_dir), str(tmp_path / "pipe.png"))
    _assert_one_line_error(code, err, "not a regular file")
    code, err = _cli(capsys, "predict", str(model_dir), str(tmp_path))  # a folder with only the FIFO
    _assert_one_line_error(code, err, "holds no image files")


def test_a_training_class_without_images_is_refused_and_special_files_are_skipped(tmp_path, make_image,
                                                                                  capsys) -> None:
    root = tmp_path / "images"
    for split in ("train", "test"):
        (root / split / "cats").mkdir(parents=True)
        make_image(root / split / "cats" / "a.png")
    (root / "train" / "dogs").mkdir()
    code, err = _cli(capsys, "train", "--dataset", "folder", "--data-dir", str(root), "--device", "cpu",
                     "--out", str(tmp_path / "run"))
    _assert_one_line_error(code, err, "dogs holds no images")
    make_image(root / "train" / "dogs" / "b.png")
    os.mkfifo(root / "train" / "dogs" / "pipe.png")  # read, it would block forever
    assert len(load_dataset("folder", "train", root)) == 2


def test_an_unreadable_class_folder_is_an_error_not_an_empty_class(tmp_path, make_image, monkeypatch) -> None:
    root = tmp_path / "images"
    for name in ("cats", "dogs"):
        (root / "train" / name).mkdir(parents=True)
        make_image(root / "train" / name / "a.png")
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # chmod cannot stop root, who runs the tests here: refuse the folder instead
        if self.name == "dogs":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(ResnetCifarError, match="cannot read class folder .*dogs \\(Permission denied\\)"):
        load_dataset("folder", "train", root)


@pytest.mark.parametrize("args, fragment", [
    (["train", "--dataset", "cifar10-sample", "--stop-after", "-1"], "--stop-after must be a positive integer"),
    (["bench", "--batch-sizes", "0"], "--batch-sizes must be a positive integer"),
    (["bench", "--batch-sizes", "128", "-4"], "--batch-sizes must be a positive integer"),
    (["bench", "--steps", "0"], "--steps must be a positive integer"),
    (["bench", "--warmup", "-1"], "--warmup must be an integer >= 0"),
])
def test_counts_below_their_range_are_named(tmp_path, capsys, args: list[str], fragment: str) -> None:
    code, err = _cli(capsys, *args, "--device", "cpu", *(["--out", str(tmp_path / "run")] if args[0] == "train"
                                                          else []))
    _assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "run").exists()


def test_a_full_disk_during_a_save_keeps_the_previous_files(tmp_path, capsys, monkeypatch) -> None:
    import errno

    from resnet_cifar import files

    folder = train(TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=2, batch_size=250, device="cpu",
                               out=str(tmp_path / "run")), quiet=True, stop_after=1)
    before = _snapshot(folder)
    real_fsync = files.os.fsync

    def fsync(fd: int) -> None:  # every file write of the resumed run finds the disk full
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "last.pt"))

    monkeypatch.setattr(files.os, "fsync", fsync)
    code, err = _cli(capsys, "train", "--resume", str(folder), "--quiet")
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    _assert_one_line_error(code, err, "No space left on device")
    assert _snapshot(folder) == before and not list(folder.glob(".*.tmp"))
