"""resnet-cifar import: checkpoints laid out as each source saves them (key names, nesting, container, shortcuts;
random weights) convert into model folders whose outputs equal a direct computation with the source's weights."""
from __future__ import annotations

import json
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from resnet_cifar.cli import main
from resnet_cifar.errors import ResnetCifarError
from resnet_cifar.inference.loading import load_trained_model
from resnet_cifar.inference.published import IMAGENET_MEAN, WRN_MEAN, import_weights
from resnet_cifar.models import create_model


def _random_weights(name: str, generator: torch.Generator, **options) -> dict[str, torch.Tensor]:
    """Our model's keys with random values, BatchNorm statistics included (so no layer is an identity)."""
    weights = {}
    for key, value in create_model(name, **options).state_dict().items():
        if key.endswith("num_batches_tracked"):
            weights[key] = value
        elif key.endswith("running_var"):
            weights[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith("weight") and value.ndim == 1:  # BatchNorm scale
            weights[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            weights[key] = torch.randn(value.shape, generator=generator) * 0.2
    return weights


def _theirs(ours: dict[str, torch.Tensor], renames: list[tuple[str, str]], prefix: str = "") -> dict:
    """The same tensors under the source's key names."""
    out = {}
    for key, value in ours.items():
        for old, new in renames:
            key = key.replace(old, new)
        out[prefix + key] = value
    return out


def _functional(w: dict[str, torch.Tensor], x: torch.Tensor, stages: list[int], *, shortcut_key: str, head: str,
                imagenet_stem: bool = False) -> torch.Tensor:
    """A residual network of basic blocks computed directly from the source's tensors (no module of ours)."""
    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(t, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                            False, 0.0, 1e-5)

    x = F.conv2d(x, w["conv1.weight"], stride=2 if imagenet_stem else 1, padding=3 if imagenet_stem else 1)
    x = F.relu(bn(x, "bn1"))
    if imagenet_stem:
        x = F.max_pool2d(x, 3, 2, 1)
    for stage, blocks in enumerate(stages, 1):
        for block in range(blocks):
            p, stride = f"layer{stage}.{block}", 2 if stage > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, w[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, w[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            if f"{p}.{shortcut_key}.0.weight" in w:  # projection: 1x1 convolution and BatchNorm
                identity = bn(F.conv2d(x, w[f"{p}.{shortcut_key}.0.weight"], stride=stride), f"{p}.{shortcut_key}.1")
            elif out.shape[1] != x.shape[1]:  # option A: subsample, a quarter of the new width of zeros each side
                quarter = out.shape[1] // 4
                identity = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, quarter, quarter))
            else:
                identity = x
            x = F.relu(out + identity)
    return F.linear(x.mean((2, 3)), w[f"{head}.weight"], w[f"{head}.bias"])


def _check(folder, reference: torch.Tensor, images: torch.Tensor) -> None:
    trained = load_trained_model(folder)
    with torch.no_grad():
        torch.testing.assert_close(trained.model(images), reference, rtol=1e-4, atol=1e-4)


def test_akamaster_th_file(tmp_path) -> None:
    ours = _random_weights("resnet20", torch.Generator().manual_seed(0), zero_pad="split")
    theirs = _theirs({k: v for k, v in ours.items() if "num_batches_tracked" not in k}, [("fc.", "linear.")],
                     prefix="module.")  # saved from DataParallel by an old PyTorch (no batch counters)
    torch.save({"state_dict": theirs, "best_prec1": 91.73}, tmp_path / "resnet20-12fca82f.th")
    import_weights("akamaster", tmp_path / "resnet20-12fca82f.th", tmp_path / "out", model="resnet20")
    images = torch.randn(3, 3, 32, 32)
    plain = {k.removeprefix("module."): v for k, v in theirs.items()}
    _check(tmp_path / "out", _functional(plain, images, [3, 3, 3], shortcut_key="shortcut", head="linear"), images)
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["model_options"] == {"shortcut": "A", "zero_pad": "split"} and info["mean"] == IMAGENET_MEAN
    assert info["class_names"][0] == "airplane" and info["dataset"] == "cifar10"  # 10 classes of a CIFAR net


def test_chenyaofo_hub_state_dict_for_cifar100(tmp_path, capsys) -> None:
    ours = _random_weights("resnet20", torch.Generator().manual_seed(1), shortcut="B", num_classes=100)
    theirs = _theirs(ours, [(".shortcut.", ".downsample.")])
    torch.save(theirs, tmp_path / "cifar100_resnet20.pt")
    assert main(["import", "chenyaofo", str(tmp_path / "cifar100_resnet20.pt"), "--model", "resnet20",
                 "--dataset", "cifar100", "--out", str(tmp_path / "out")]) == 0
    assert "with 100 classes" in capsys.readouterr().out
    images = torch.randn(3, 3, 32, 32)
    _check(tmp_path / "out", _functional(theirs, images, [3, 3, 3], shortcut_key="downsample", head="fc"), images)
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["dataset"] == "cifar100" and info["class_names"][:2] == ["apple", "aquarium_fish"]
    assert info["mean"] == [0.5070, 0.4865, 0.4409] and info["model_options"] == {"shortcut": "B"}


def test_kuangliu_ckpt(tmp_path) -> None:
    ours = _random_weights("resnet18", torch.Generator().manual_seed(2))
    theirs = _theirs(ours, [("fc.", "linear.")], prefix="module.")
    torch.save({"net": theirs, "acc": 95.1, "epoch": 199}, tmp_path / "ckpt.pth")
    import_weights("kuangliu", tmp_path / "ckpt.pth", tmp_path / "out", model="resnet18", dataset="cifar10")
    images = torch.randn(2, 3, 32, 32)
    plain = {k.removeprefix("module."): v for k, v in theirs.items()}
    _check(tmp_path / "out", _functional(plain, images, [2, 2, 2, 2], shortcut_key="shortcut", head="linear"), images)


def test_torchvision_state_dict(tmp_path) -> None:
    ours = _random_weights("resnet18", torch.Generator().manual_seed(3), stem="imagenet", num_classes=1000)
    theirs = _theirs(ours, [(".shortcut.", ".downsample.")])
    torch.save(theirs, tmp_path / "resnet18.pth")
    import_weights("torchvision", tmp_path / "resnet18.pth", tmp_path / "out", model="resnet18")
    images = torch.randn(1, 3, 64, 64)
    _check(tmp_path / "out", _functional(theirs, images, [2, 2, 2, 2], shortcut_key="downsample", head="fc",
                                         imagenet_stem=True), images)
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["input_size"] == [3, 224, 224] and info["num_classes"] == 1000 and info["class_names"][5] == "class5"


def test_a_plain_state_dict_of_a_compiled_model(tmp_path) -> None:
    ours = _random_weights("resnet20", torch.Generator().manual_seed(4), zero_pad="end")
    torch.save(_theirs(ours, [], prefix="_orig_mod."), tmp_path / "weights.pt")
    import_weights("state-dict", tmp_path / "weights.pt", tmp_path / "out", model="resnet20", zero_pad="end")
    reference = create_model("resnet20", zero_pad="end").eval()
    reference.load_state_dict(ours)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _check(tmp_path / "out", reference(images), images)


@pytest.fixture
def akamaster_file(tmp_path):
    ours = _random_weights("resnet20", torch.Generator().manual_seed(5))
    torch.save({"state_dict": _theirs(ours, [("fc.", "linear.")], prefix="module.")}, tmp_path / "r20.th")
    return tmp_path / "r20.th"


def _refused(capsys, *argv: str) -> str:
    assert main(["import", *argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("resnet-cifar: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    return errors[0]


def test_bad_imports_are_one_line_errors(akamaster_file, tmp_path, capsys) -> None:
    out = ["--out", str(tmp_path / "out")]
    assert "unknown model 'resnet21'" in _refused(capsys, "akamaster", str(akamaster_file), "--model", "resnet21", *out)
    assert "does not fit resnet32" in _refused(capsys, "akamaster", str(akamaster_file), "--model", "resnet32", *out)
    assert "head of 10 classes, not 100" in _refused(capsys, "akamaster", str(akamaster_file), "--model", "resnet20",
                                                     "--num-classes", "100", *out)
    assert "has 10 classes, cifar100 has 100" in _refused(capsys, "akamaster", str(akamaster_file), "--model",
                                                          "resnet20", "--dataset", "cifar100", *out)
    # Option B weights (chenyaofo's layout) are not an option A net: refused, not loaded half-way.
    ours = _random_weights("resnet20", torch.Generator().manual_seed(6), shortcut="B")
    torch.save({"state_dict": _theirs(ours, [("fc.", "linear.")])}, tmp_path / "b.th")
    assert "unexpected: layer2.0.shortcut.0.weight" in _refused(capsys, "akamaster", str(tmp_path / "b.th"),
                                                                 "--model", "resnet20", *out)
    truncated = tmp_path / "truncated.th"
    truncated.write_bytes(akamaster_file.read_bytes()[:5000])
    assert "is not a readable PyTorch file" in _refused(capsys, "akamaster", str(truncated), "--model", "resnet20",
                                                        *out)
    assert "expected a dict with the weights under 'net'" in _refused(capsys, "kuangliu", str(akamaster_file),
                                                                      "--model", "resnet20", *out)
    assert "not a file; or a name: resnet20" in _refused(capsys, "akamaster", "nope.th", *out)
    assert not (tmp_path / "out").exists()


class TrainingArguments:
    """Stands for the objects some projects save beside their weights (an argparse Namespace, a config)."""


def test_a_file_that_needs_a_full_unpickler_is_refused(tmp_path, capsys) -> None:
    # Loading a pickled object of a class means importing and running code named in the file.
    torch.save({"state_dict": {}, "args": TrainingArguments()}, tmp_path / "object.th")
    err = _refused(capsys, "akamaster", str(tmp_path / "object.th"), "--model", "resnet20",
                   "--out", str(tmp_path / "out"))
    assert "would run code from the file" in err and "weights_only=False" in err


def test_wrong_format_name_is_argparse_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import", "timm", "x.pt", "--out", "o"])
    assert exit_.value.code == 2 and "invalid choice: 'timm'" in capsys.readouterr().err


def test_a_download_name_offline_says_so(monkeypatch, tmp_path, capsys) -> None:
    import urllib.error

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    err = _refused(capsys, "chenyaofo", "cifar10_resnet20", "--out", str(tmp_path / "out"))
    assert "cannot download https://github.com/chenyaofo/" in err and "offline?" in err


def test_import_rejects_a_folder_that_holds_a_model(akamaster_file, tmp_path) -> None:
    import_weights("akamaster", akamaster_file, tmp_path / "out", model="resnet20")
    with pytest.raises(ResnetCifarError, match="already holds a model"):
        import_weights("akamaster", akamaster_file, tmp_path / "out", model="resnet20")
    with pytest.raises(ResnetCifarError, match="is a file: give --out a folder"):
        import_weights("akamaster", akamaster_file, tmp_path / "out" / "model.safetensors", model="resnet20")


def test_fine_tuning_starts_from_the_imported_weights_with_a_new_head_where_the_classes_differ(tmp_path,
                                                                                              sample_folder) -> None:
    from resnet_cifar.core.distributed import World
    from resnet_cifar.training.build import build_parts, resolve_placement
    from resnet_cifar.training.config import TrainConfig

    ours = _random_weights("resnet20", torch.Generator().manual_seed(7), shortcut="B", num_classes=100)
    torch.save(_theirs(ours, [(".shortcut.", ".downsample.")]), tmp_path / "c100.pt")
    import_weights("chenyaofo", tmp_path / "c100.pt", tmp_path / "c100", model="resnet20")

    def parts(**settings):
        config = TrainConfig(**{"model": "resnet20", "dataset": "folder", "data_dir": str(sample_folder),
                                "image_size": 16, "device": "cpu", "init_from": str(tmp_path / "c100"), **settings})
        return build_parts(config, resolve_placement(config, World()), quiet=True)

    model = parts(model_options={"shortcut": "B"}).model
    started = model.state_dict()
    assert all(torch.equal(started[k], v) for k, v in ours.items() if not k.startswith("fc."))
    assert started["fc.weight"].shape == (10, 64)  # the folder's 10 classes: a new head
    with pytest.raises(ResnetCifarError, match="trained with shortcut B; this run has shortcut A"):
        parts()
    with pytest.raises(ResnetCifarError, match="holds a resnet20, this run trains resnet32"):
        parts(model="resnet32")


def test_train_init_from_on_the_command_line(akamaster_file, tmp_path, run_cli) -> None:
    import_weights("akamaster", akamaster_file, tmp_path / "imported", model="resnet20")
    done = run_cli("train", "--model", "resnet20", "--dataset", "cifar10-sample", "--train-subset", "100",
                   "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--quiet", "--init-from",
                   str(tmp_path / "imported"), "--out", str(tmp_path / "tuned"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from"] == str(tmp_path / "imported")
    evaluated = run_cli("eval", str(tmp_path / "imported"), "--dataset", "cifar10-sample", "--json")
    assert evaluated.returncode == 0, evaluated.stderr  # eval accepts an imported folder as it is


def test_import_says_what_a_file_is_when_it_is_no_checkpoint(akamaster_file, tmp_path, capsys, make_image) -> None:
    out = ["--model", "resnet20", "--out", str(tmp_path / "out")]
    (tmp_path / "random.th").write_bytes(bytes(range(7, 200)) * 50)
    assert "is not a PyTorch checkpoint: it is neither a zip nor a pickle" in _refused(
        capsys, "akamaster", str(tmp_path / "random.th"), *out)
    assert "is not a PyTorch checkpoint: it is a PNG image" in _refused(
        capsys, "akamaster", str(make_image(tmp_path / "cat.png")), *out)
    onnx_file = tmp_path / "m.onnx"  # how every ONNX file begins: field 1 (ir_version), a varint
    onnx_file.write_bytes(b"\x08\x0a\x12\x07pytorch\x1a\x052.13.0" + bytes(100))
    assert "is not a PyTorch checkpoint: it is an ONNX model" in _refused(capsys, "akamaster", str(onnx_file), *out)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change,message", [
    ("nan-weights", "holds NaN or infinite weights"),
    ("complex-weights", "holds complex-valued weights"),
    ("zero-std", "std [0.0, 0.0, 0.0] must be above 0"),
    ("nan-mean", "mean [nan, nan, nan] is not a list of numbers"),
])
def test_import_refuses_what_eval_would_refuse(tmp_path, capsys, change, message) -> None:
    ours = _random_weights("resnet20", torch.Generator().manual_seed(3))
    if change == "nan-weights":
        ours["conv1.weight"][0, 0, 0, 0] = float("nan")
    if change == "complex-weights":
        ours["conv1.weight"] = ours["conv1.weight"].to(torch.complex64)
    torch.save({"state_dict": _theirs(ours, [("fc.", "linear.")], prefix="module.")}, tmp_path / "r20.th")
    extra = {"zero-std": ["--std", "0", "0", "0"], "nan-mean": ["--mean", "nan", "nan", "nan"]}.get(change, [])
    assert message in _refused(capsys, "akamaster", str(tmp_path / "r20.th"), "--model", "resnet20", *extra,
                               "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# The other residual families: kuangliu's PreActResNet18 and ResNeXt29, the Wide ResNet authors' functional PyTorch
# code and its most used module port.

Key = Callable[[int, int, str], str]  # (stage from 1, block from 0, part) -> the source's key prefix


def _bn(w: dict[str, torch.Tensor], t: torch.Tensor, p: str) -> torch.Tensor:
    return F.batch_norm(t, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"], False,
                        0.0, 1e-5)


def _preact_functional(w: dict[str, torch.Tensor], x: torch.Tensor, stages: list[int], key: Key, stem: str,
                       final_bn: str | None, head: str) -> torch.Tensor:
    """A pre-activation net of basic blocks: each block normalises its input, a projection reads that, an identity
    the input itself; a BN-ReLU after the last stage where the source has one."""
    x = F.conv2d(x, w[stem], padding=1)
    for stage, blocks in enumerate(stages, 1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            preactivated = F.relu(_bn(w, x, key(stage, block, "bn_in")))
            out = F.conv2d(preactivated, w[key(stage, block, "conv_in")], stride=stride, padding=1)
            out = F.conv2d(F.relu(_bn(w, out, key(stage, block, "bn_mid"))), w[key(stage, block, "conv_out")],
                           padding=1)
            projection = key(stage, block, "projection")
            x = out + (F.conv2d(preactivated, w[projection], stride=stride) if projection in w else x)
    if final_bn:
        x = F.relu(_bn(w, x, final_bn))
    return F.linear(x.mean((2, 3)), w[f"{head}.weight"], w[f"{head}.bias"])


def test_kuangliu_preact_resnet18(tmp_path) -> None:
    ours = _random_weights("preact-resnet18", torch.Generator().manual_seed(10), final_norm=False)
    theirs = _theirs(ours, [("fc.", "linear.")], prefix="module.")
    torch.save({"net": theirs, "acc": 95.1, "epoch": 199}, tmp_path / "ckpt.pth")
    import_weights("kuangliu", tmp_path / "ckpt.pth", tmp_path / "out", model="preact-resnet18")
    parts = {"bn_in": "bn1", "conv_in": "conv1.weight", "bn_mid": "bn2", "conv_out": "conv2.weight",
             "projection": "shortcut.0.weight"}
    plain = {k.removeprefix("module."): v for k, v in theirs.items()}
    images = torch.randn(2, 3, 32, 32)
    reference = _preact_functional(plain, images, [2, 2, 2, 2], lambda s, b, part: f"layer{s}.{b}.{parts[part]}",
                                   "conv1.weight", None, "linear")
    _check(tmp_path / "out", reference, images)
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["model_options"]["final_norm"] is False and info["dataset"] == "cifar10"


def test_kuangliu_resnext29_2x64d(tmp_path) -> None:
    ours = _random_weights("resnext29-2x64d", torch.Generator().manual_seed(11), stem="pointwise")
    torch.save({"net": _theirs(ours, [("fc.", "linear.")]), "acc": 94.0, "epoch": 199}, tmp_path / "ckpt.pth")
    import_weights("kuangliu", tmp_path / "ckpt.pth", tmp_path / "out", model="resnext29-2x64d")
    w = _theirs(ours, [("fc.", "linear.")])
    images = torch.randn(2, 3, 32, 32)
    # Their ResNeXt: a 1x1 stem with BN-ReLU; blocks of 1x1, grouped 3x3 (cardinality 2, carrying the stride), 1x1,
    # each with BN, a ReLU after the first two and after the addition; conv+BN shortcuts where the shape changes.
    x = F.relu(_bn(w, F.conv2d(images, w["conv1.weight"]), "bn1"))
    for stage in (1, 2, 3):
        for block in range(3):
            p, stride = f"layer{stage}.{block}", 2 if stage > 1 and block == 0 else 1
            out = F.relu(_bn(w, F.conv2d(x, w[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(_bn(w, F.conv2d(out, w[f"{p}.conv2.weight"], stride=stride, padding=1, groups=2), f"{p}.bn2"))
            out = _bn(w, F.conv2d(out, w[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.shortcut.0.weight" in w:
                x = _bn(w, F.conv2d(x, w[f"{p}.shortcut.0.weight"], stride=stride), f"{p}.shortcut.1")
            x = F.relu(out + x)
    reference = F.linear(x.mean((2, 3)), w["linear.weight"], w["linear.bias"])
    _check(tmp_path / "out", reference, images)
    assert load_trained_model(tmp_path / "out").model.conv1.kernel_size == (1, 1)


def test_the_wide_resnet_authors_functional_params(tmp_path) -> None:
    ours = _random_weights("wrn-16-2", torch.Generator().manual_seed(12))
    parts = {"bn1": "bn0", "conv1.weight": "conv0", "bn2": "bn1", "conv2.weight": "conv1",
             "shortcut.0.weight": "convdim"}
    theirs = {}
    for key, value in ours.items():
        if key.endswith("num_batches_tracked"):
            continue  # their parameters have no batch counters
        stage, block, rest = key.split(".", 2) if key.startswith("layer") else (None, None, key)
        if stage is not None:
            part = next(ours_part for ours_part in parts if rest.startswith(ours_part))
            key = f"group{int(stage[5:]) - 1}.block{block}.{parts[part]}{rest[len(part):]}"
        theirs[{"conv1.weight": "conv0"}.get(key, key.replace("final_bn.", "bn."))] = value
    assert "group0.block0.convdim" in theirs and "bn.running_var" in theirs and "conv0" in theirs
    torch.save({"params": theirs, "epoch": 200, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "model.pt7")
    import_weights("szagoruyko", tmp_path / "model.pt7", tmp_path / "out", model="wrn-16-2", dataset="cifar10")
    names = {"bn_in": "bn0", "conv_in": "conv0", "bn_mid": "bn1", "conv_out": "conv1", "projection": "convdim"}
    images = torch.randn(2, 3, 32, 32)
    reference = _preact_functional(theirs, images, [2, 2, 2], lambda s, b, part: f"group{s - 1}.block{b}.{names[part]}",
                                   "conv0", "bn", "fc")
    _check(tmp_path / "out", reference, images)
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["mean"] == pytest.approx(WRN_MEAN) and info["model"] == "wrn-16-2"


@pytest.mark.parametrize("container", ["checkpoint", "state_dict"])
def test_the_wide_resnet_pytorch_port(tmp_path, container) -> None:
    ours = _random_weights("wrn-16-2", torch.Generator().manual_seed(13))
    theirs = {}
    for key, value in ours.items():
        if key.startswith("layer"):
            key = f"block{key[5]}.layer.{key[7:]}".replace(".shortcut.0.", ".convShortcut.")
        theirs[key.replace("final_bn.", "bn1.")] = value
    assert "block1.layer.0.convShortcut.weight" in theirs and "bn1.weight" in theirs
    saved = {"epoch": 200, "state_dict": theirs, "best_prec1": 95.8} if container == "checkpoint" else theirs
    torch.save(saved, tmp_path / "checkpoint.pth.tar")
    import_weights("xternalz", tmp_path / "checkpoint.pth.tar", tmp_path / "out", model="wrn-16-2")
    parts = {"bn_in": "bn1", "conv_in": "conv1.weight", "bn_mid": "bn2", "conv_out": "conv2.weight",
             "projection": "convShortcut.weight"}
    images = torch.randn(2, 3, 32, 32)
    reference = _preact_functional(theirs, images, [2, 2, 2], lambda s, b, part: f"block{s}.layer.{b}.{parts[part]}",
                                   "conv1.weight", "bn1", "fc")
    _check(tmp_path / "out", reference, images)


def test_family_import_errors_name_the_problem(tmp_path, capsys) -> None:
    ours = _random_weights("wrn-16-2", torch.Generator().manual_seed(14))
    torch.save({"state_dict": ours}, tmp_path / "ours.pth")
    out = ["--out", str(tmp_path / "out")]

    def refused(*args: str) -> str:
        assert main(["import", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err

    assert "expected a dict with the weights under 'params'" in refused("szagoruyko", str(tmp_path / "ours.pth"),
                                                                       "--model", "wrn-16-2", *out)
    assert "does not fit wrn-16-4" in refused("xternalz", str(tmp_path / "ours.pth"), "--model", "wrn-16-4", *out)
    assert "wrn-15-2 is no Wide ResNet" in refused("xternalz", str(tmp_path / "ours.pth"), "--model", "wrn-15-2",
                                                   *out)
    assert not (tmp_path / "out").exists()
