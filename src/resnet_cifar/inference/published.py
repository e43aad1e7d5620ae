"""Published checkpoints of other projects, converted into resnet-cifar model folders (``resnet-cifar import``).

Each format says where the weights sit in the file, how its key names map to ours, which of our model options its
architecture is (shortcut type, zero-pad layout, stem) and the preprocessing its authors trained with. Files are
read with ``torch.load(weights_only=True)`` only; the converted weights must fit our model exactly (every key,
every shape), or nothing is written.
"""
from __future__ import annotations

import pickle
import re
import urllib.error
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..core.checkpoint import clean_state_dict, export_model
from ..core.saved_model import check_info, mismatched_keys, model_info, nonfinite_weights
from ..core.source import ModelSource
from ..data.class_names import CLASSES
from ..errors import ResnetCifarError, first_line
from ..log import notice
from ..models import create_model, model_spec
from ..models.layouts import with_zero_pad

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The Wide ResNet authors' (and their PyTorch ports') CIFAR mean and std, in pixel values / 255, for both datasets.
WRN_MEAN = [v / 255 for v in (125.3, 123.0, 113.9)]
WRN_STD = [v / 255 for v in (63.0, 62.1, 66.7)]
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
CIFAR100_MEAN, CIFAR100_STD = [0.5070, 0.4865, 0.4409], [0.2673, 0.2564, 0.2761]

_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_CHENYAOFO = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
_TORCHVISION = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class Download:
    """A published file: its URL (whose name ends in the first hex digits of its SHA-256), model and dataset."""

    url: str
    model: str
    dataset: str | None


@dataclass(frozen=True)
class Format:
    """How one project saves its weights."""

    description: str
    weights: Callable[[Any], Any]  # the state dict inside the loaded object
    renames: tuple[tuple[str, Any], ...]  # (pattern, re.sub replacement) on every key, after module./_orig_mod. go
    options: dict[str, Any]  # our model options that are its architecture
    normalisation: Callable[[str | None], tuple[list[float], list[float]]]
    input_side: int = 32
    downloads: dict[str, Download] = field(default_factory=dict)
    options_by_model: tuple[tuple[str, dict[str, Any]], ...] = ()  # (pattern of our model name, more options)

    def model_options(self, model: str) -> dict[str, Any]:
        """Our model options that are this format's architecture for ``model``."""
        options = dict(self.options)
        for pattern, more in self.options_by_model:
            if re.match(pattern, model):
                options.update(more)
        return options


def _key(name: str) -> Callable[[Any], Any]:
    def pick(loaded: Any) -> Any:
        if not isinstance(loaded, dict) or name not in loaded:
            raise ResnetCifarError(f"expected a dict with the weights under {name!r}, found "
                                   f"{_describe(loaded)}")
        return loaded[name]
    return pick


def _itself(loaded: Any) -> Any:
    return loaded


def _key_or_itself(name: str) -> Callable[[Any], Any]:
    """The weights under ``name`` of a checkpoint dict, or the dict itself when it is the state dict."""
    def pick(loaded: Any) -> Any:
        return loaded[name] if isinstance(loaded, dict) and name in loaded else loaded
    return pick


# The reference Wide ResNet's functional parameters, per block: ours in the same place.
_WRN_BLOCK = {"bn0": "bn1", "conv0": "conv1.weight", "bn1": "bn2", "conv1": "conv2.weight",
              "convdim": "shortcut.0.weight"}


def _wrn_block_key(match: re.Match) -> str:
    return f"layer{int(match[1]) + 1}.{match[2]}.{_WRN_BLOCK[match[3]]}"


def _per_dataset(dataset: str | None) -> tuple[list[float], list[float]]:
    return (CIFAR100_MEAN, CIFAR100_STD) if dataset == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)


FORMATS: dict[str, Format] = {
    "akamaster": Format(
        "the paper's CIFAR ResNet-20..1202 of akamaster/pytorch_resnet_cifar10 (.th: state_dict, module. keys, "
        "linear head, option A shortcuts; trained with ImageNet's mean/std)",
        _key("state_dict"), ((r"^linear\.", "fc."),), {"shortcut": "A", "zero_pad": "split"},
        lambda dataset: (IMAGENET_MEAN, IMAGENET_STD),
        downloads={name: Download(f"{_AKAMASTER}{name}-{digest}.th", name, "cifar10") for name, digest in (
            ("resnet20", "12fca82f"), ("resnet32", "d509ac18"), ("resnet44", "014dd654"), ("resnet56", "4bfd9763"),
            ("resnet110", "1d1ed7c2"), ("resnet1202", "f3b1deed"))}),
    "chenyaofo": Format(
        "the torch.hub CIFAR-10/100 ResNet-20..56 of chenyaofo/pytorch-cifar-models (a state dict, downsample = "
        "projection shortcuts (option B), fc head; its own mean/std per dataset)",
        _itself, ((r"\.downsample\.", ".shortcut."),), {"shortcut": "B"}, _per_dataset,
        downloads={f"{dataset}_{name}": Download(f"{_CHENYAOFO}{dataset}_{name}-{digest}.pt", name, dataset)
                   for dataset, name, digest in (
                       ("cifar10", "resnet20", "4118986f"), ("cifar10", "resnet32", "ef93fc4d"),
                       ("cifar10", "resnet44", "2a3cabcb"), ("cifar10", "resnet56", "187c023a"),
                       ("cifar100", "resnet20", "23dac2f1"), ("cifar100", "resnet32", "84213ce6"),
                       ("cifar100", "resnet44", "ffe32858"), ("cifar100", "resnet56", "f2eff4c8"))}),
    "kuangliu": Format(
        "ckpt.pth of kuangliu/pytorch-cifar (net/acc/epoch, module. keys, shortcut Sequential, linear head; "
        "ResNet-18..152, PreActResNet18..152 (no BN-ReLU after the last stage: final_norm=False) and "
        "ResNeXt29_2x64d/_32x4d (1x1 stem: stem=pointwise; its 4x64d and 8x64d are wider than the paper's "
        "nets and fit none of ours))",
        _key("net"), ((r"^linear\.", "fc."),), {}, _per_dataset,
        options_by_model=((r"preact-", {"final_norm": False}), (r"resnext29-", {"stem": "pointwise"}))),
    "szagoruyko": Format(
        "the Wide ResNet authors' PyTorch code, szagoruyko/wide-residual-networks (a dict with 'params': "
        "conv0, groupG.blockB.bn0/conv0/bn1/conv1/convdim, bn, fc; their mean/std): any wrn-D-K",
        _key("params"), ((r"^conv0$", "conv1.weight"),
                         (r"^group(\d+)\.block(\d+)\.(bn0|bn1|conv0|conv1|convdim)(?=\.|$)",
                          _wrn_block_key), (r"^bn\.", "final_bn.")),
        {}, lambda dataset: (WRN_MEAN, WRN_STD)),
    "xternalz": Format(
        "the most used PyTorch port of the Wide ResNet, xternalz/WideResNet-pytorch (its checkpoint's 'state_dict' "
        "or the state dict itself: blockS.layer.N, convShortcut, a final bn1, fc; the authors' mean/std): any "
        "wrn-D-K",
        _key_or_itself("state_dict"), ((r"^block(\d)\.layer\.", r"layer\1."), (r"\.convShortcut\.", ".shortcut.0."),
                                       (r"^bn1\.", "final_bn.")),
        {}, lambda dataset: (WRN_MEAN, WRN_STD)),
    "torchvision": Format(
        "torchvision ResNet state dicts (ImageNet stem, downsample shortcuts, fc head; ImageNet's mean/std)",
        _itself, ((r"\.downsample\.", ".shortcut."),), {"stem": "imagenet"},
        lambda dataset: (IMAGENET_MEAN, IMAGENET_STD), input_side=224,
        downloads={name: Download(f"{_TORCHVISION}{name}-{digest}.pth", name, None) for name, digest in (
            ("resnet18", "f37072fd"), ("resnet34", "b627a593"), ("resnet50", "0676ba61"),
            ("resnet101", "63fe2227"), ("resnet152", "394f9c45"))}),
    "state-dict": Format(
        "a plain state dict of one of our models (module./_orig_mod. prefixes are dropped)",
        _itself, (), {}, _per_dataset),
}


@dataclass
class Imported:
    """What an import wrote, for the command's report."""

    folder: Path
    model: str
    options: dict[str, Any]
    num_classes: int


def import_weights(format_name: str, source: str | Path, out: str | Path, *, model: str | None = None,
                   num_classes: int | None = None, dataset: str | None = None,
                   mean: list[float] | None = None, std: list[float] | None = None, **options: Any) -> Imported:
    """Convert a published checkpoint (a file, or a name of the format's downloads) into the model folder ``out``.

    ``model`` is one of ours (implied by a download name); ``num_classes`` is checked against the file's head;
    ``dataset`` (cifar10/cifar100) names the classes and picks the source's preprocessing; ``mean``/``std``
    override it; ``options`` add model options to the format's own.
    """
    spec = _format(format_name)
    path, download = _local_file(spec, format_name, source)
    model = model or (download.model if download else None)
    if model is None:
        raise ResnetCifarError("give --model NAME: the model the weights are for (see 'resnet-cifar models')")
    model_spec(model)  # an unknown name is refused before the file is read
    dataset = dataset or (download.dataset if download else None)
    weights = _renamed(spec, _state_dict(spec, path))
    _check_values(weights, path)
    head = weights.get("fc.weight")
    found_classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else None
    if num_classes is not None and found_classes is not None and num_classes != found_classes:
        raise ResnetCifarError(f"{path} has a head of {found_classes} classes, not {num_classes}: leave out "
                               f"--num-classes, or fine-tune it with train --init-from")
    num_classes = num_classes or found_classes
    if num_classes is None:
        raise ResnetCifarError(f"{path} has no fc.weight (the head) after renaming: is it in the {format_name} "
                               f"format? Give --num-classes if the file has no head")
    model_options = with_zero_pad(model, {**spec.model_options(model), **options})
    network = _fitted(create_model(model, num_classes=num_classes, **model_options), weights, path, model,
                      format_name)
    if dataset is None and spec.input_side == 32:  # a CIFAR net: 10 or 100 classes say which CIFAR
        dataset = next((name for name, classes in CLASSES.items() if len(classes) == num_classes), None)
    if dataset is not None and len(CLASSES[dataset]) != num_classes:
        raise ResnetCifarError(f"{path} has {num_classes} classes, {dataset} has {len(CLASSES[dataset])}: give the "
                               f"dataset the weights were trained on")
    names = CLASSES[dataset] if dataset is not None else [f"class{i}" for i in range(num_classes)]
    source_mean, source_std = spec.normalisation(dataset)
    info = model_info(model, model_options, names, (3, spec.input_side, spec.input_side), mean or source_mean,
                      std or source_std, dataset=dataset,
                      source={"format": format_name, "file": str(download.url if download else path)})
    check_info(info, f"the import of {path} (--mean/--std)")  # what eval would refuse is never written
    out = Path(out)
    if out.is_file():
        raise ResnetCifarError(f"{out} is a file: give --out a folder for the model")
    if ModelSource(out).holds_model():
        raise ResnetCifarError(f"{out} already holds a model: choose another --out")
    export_model(out, network.state_dict(), info)
    return Imported(out, model, model_options, num_classes)


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise ResnetCifarError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def _local_file(spec: Format, format_name: str, source: str | Path) -> tuple[Path, Download | None]:
    """The file to read: ``source`` itself, or the format's download of that name (fetched once, hash-checked,
    into torch's hub cache)."""
    path = Path(source)
    if path.is_file():
        return path, None
    if str(source) not in spec.downloads:
        known = f"; or a name: {', '.join(spec.downloads)}" if spec.downloads else ""
        raise ResnetCifarError(f"{source} is not a file{known}")
    download = spec.downloads[str(source)]
    target = Path(torch.hub.get_dir()) / "checkpoints" / download.url.rsplit("/", 1)[1]
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = re.search(r"-([0-9a-f]{8})\.\w+$", download.url).group(1)
        notice(f"downloading {download.url} into {target.parent}")
        try:
            torch.hub.download_url_to_file(download.url, str(target), hash_prefix=digest, progress=False)
        except (urllib.error.URLError, OSError) as error:
            raise ResnetCifarError(f"cannot download {download.url} ({getattr(error, 'reason', error)}): offline? "
                                   f"Fetch the file elsewhere and give its path instead of {source}") from None
        except RuntimeError as error:  # torch.hub's hash check
            raise ResnetCifarError(f"{download.url} did not match its published hash ({error})") from None
    return target, download


def _check_values(weights: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights no model folder may hold: complex numbers, NaN or infinities."""
    complex_keys = [key for key, value in weights.items() if value.is_complex()]
    if complex_keys:
        raise ResnetCifarError(f"{path} holds complex-valued weights ({', '.join(complex_keys[:3])}), which no "
                               f"ResNet has: is it the right file?")
    broken = nonfinite_weights(weights)
    if broken:
        raise ResnetCifarError(f"{path} holds NaN or infinite weights ({broken}): the run that made them diverged")


# The first bytes of files people mistake for checkpoints, and what they are.
_OTHER_FILES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                (b"<?xml", "an XML file (an OpenVINO model?)"), (b"<net", "an OpenVINO model"),
                (b"\x08", "an ONNX model (a protobuf)"), (b"\x1f\x8b", "a gzip archive"))


def _not_a_checkpoint(path: Path) -> str | None:
    """What ``path`` is, when its first bytes say it is no PyTorch checkpoint (a zip, or a pickle), else None."""
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file (import reads torch.save files: torch.save the dict that safetensors loads)"
    return next((what for magic, what in _OTHER_FILES if head.startswith(magic)),
                "neither a zip nor a pickle" if head else "empty")


def _state_dict(spec: Format, path: Path) -> dict[str, torch.Tensor]:
    """The weights in ``path``, loaded without running any code from the file."""
    kind = _not_a_checkpoint(path)
    if kind is not None:
        raise ResnetCifarError(f"{path} is not a PyTorch checkpoint: it is {kind}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # the restricted unpickler met a class or function to import ("Unsupported global", older: "class")
        if any(word in str(error).lower() for word in ("global", "unsupported class")):
            raise ResnetCifarError(
                f"{path} stores Python objects besides tensors, and reading them would run code from the file, which "
                f"import refuses: if you trust it, load it in Python with torch.load(..., weights_only=False) and "
                f"torch.save its state_dict(), then import that file") from None
        raise ResnetCifarError(f"{path} is not a readable PyTorch file ({first_line(error)})") from None
    except Exception as error:  # noqa: BLE001  a damaged file can fail anywhere inside the unpickler
        raise ResnetCifarError(f"{path} is not a readable PyTorch file ({first_line(error)})") from None
    try:
        weights = spec.weights(loaded)
    except ResnetCifarError as error:
        raise ResnetCifarError(f"{path}: {error}") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ResnetCifarError(f"{path} holds {_describe(weights)} where its weights should be")
    return weights


def _renamed(spec: Format, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in clean_state_dict(weights).items():
        for pattern, replacement in spec.renames:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def _fitted(network: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path, model: str,
            format_name: str) -> torch.nn.Module:
    """``network`` with ``weights`` loaded, after checking that they are exactly its parameters and statistics."""
    expected = network.state_dict()
    for key, value in expected.items():  # counters older PyTorch versions did not save: they change nothing
        if key.endswith("num_batches_tracked") and key not in weights:
            weights[key] = torch.zeros_like(value)
    missing, unexpected, shaped = mismatched_keys(expected, weights)
    wrong = [f"{k} {tuple(weights[k].shape)} (ours {tuple(expected[k].shape)})" for k in shaped]
    problems = [f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("other shapes", wrong)) if keys]
    if problems:
        raise ResnetCifarError(f"{path} does not fit {model} as the {format_name} format builds it "
                               f"({'; '.join(problems)}): check --model and the format")
    network.load_state_dict(weights)
    return network


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(str, list(value)[:5]))}"
    return f"a {type(value).__name__}"
