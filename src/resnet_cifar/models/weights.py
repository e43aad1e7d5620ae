"""Weights trained by this project and shipped inside the package, and what a model's inputs are.

``pretrained/manifest.json`` maps a weights name to a ``model.safetensors`` (with its ``model.json`` beside it),
both files' SHA-256 and how it was trained. ``ModelSpec.weights``, ``create_model(name, pretrained=True)``,
``list_models(pretrained=True)`` and ``--pretrained NAME`` all read this one table. Weights for more models join by
adding files and a manifest entry (``inference.pretrained.add_pretrained``); no code changes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError
from ..files import file_sha256

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Preprocessing:
    """What a model takes: images of ``input_size`` (channels, height, width), scaled to [0, 1], then per channel
    ``(x - mean) / std`` (timm's pretrained config, torchvision's weights transforms)."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


# The usual CIFAR-10 training-set statistics: a model's default before it is trained (a run measures its own).
CIFAR10_PREPROCESSING = Preprocessing((3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@dataclass(frozen=True)
class ShippedWeights:
    """One manifest entry: weights of ``model`` trained on ``dataset``, with the accuracy measured for them."""

    name: str
    model: str
    dataset: str | None
    test_accuracy: float
    evaluated_on: str  # in words: which test images the accuracy was measured on
    entry: dict[str, Any]
    root: Path

    def path(self) -> Path:
        """The verified ``model.safetensors`` (it and its ``model.json`` must match the manifest's SHA-256)."""
        path = (self.root / str(self.entry.get("file"))).resolve()
        if not path.is_relative_to(self.root.resolve()) or path.name != "model.safetensors":
            raise ResnetCifarError(f"the manifest entry of {self.name!r} points outside the package's pretrained "
                                   f"folder: reinstall resnet-cifar")
        # Both files are checked: model.json says what the outputs mean (class names) and how to preprocess.
        for file, key in ((path, "sha256"), (path.with_name("model.json"), "info_sha256")):
            if not file.is_file():
                raise ResnetCifarError(f"the pretrained file {file} is missing: reinstall resnet-cifar")
            if file_sha256(file) != self.entry.get(key):
                raise ResnetCifarError(f"the pretrained file {file} does not match its checksum (damaged or "
                                       f"changed): reinstall resnet-cifar")
        return path

    def description(self, path: Path | None = None) -> dict[str, Any]:
        """The verified ``model.json`` of these weights (classes, preprocessing, model options); ``path``: what
        ``path()`` returned already, so that the files are not read and hashed again."""
        return json.loads((path or self.path()).with_name("model.json").read_text())

    @property
    def card(self) -> dict[str, Any]:
        """The model card the manifest holds (``model_card``), the test accuracy at least."""
        return {"test_accuracy": self.test_accuracy, "command": self.entry.get("command"),
                **self.entry.get("card", {})}

    @property
    def preprocessing(self) -> Preprocessing:
        info = self.description()
        return Preprocessing(tuple(info["input_size"]), tuple(info["mean"]), tuple(info["std"]))


def pretrained_manifest(root: Path = PRETRAINED_DIR) -> dict[str, dict[str, Any]]:
    """Name -> entry (``file``, ``sha256``, ``dataset``, ``test_accuracy``, how it was trained) of shipped weights."""
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResnetCifarError(f"cannot read the list of pretrained weights {path} ({error}): reinstall "
                               f"resnet-cifar") from None
    if not isinstance(manifest, dict) or not all(isinstance(entry, dict) for entry in manifest.values()):
        raise ResnetCifarError(f"{path} is not a list of pretrained weights: reinstall resnet-cifar")
    return manifest


def shipped_weights(root: Path = PRETRAINED_DIR) -> dict[str, ShippedWeights]:
    """Every shipped weights entry by name."""
    return {name: ShippedWeights(name, str(entry.get("model")), entry.get("dataset"),
                                 float(entry.get("test_accuracy", float("nan"))), str(entry.get("evaluated_on", "")),
                                 entry, root)
            for name, entry in pretrained_manifest(root).items()}


def list_pretrained(root: Path = PRETRAINED_DIR) -> list[str]:
    """Names that ``--pretrained`` and ``load_pretrained`` accept."""
    return sorted(pretrained_manifest(root))


def find_shipped(name: str, root: Path = PRETRAINED_DIR) -> ShippedWeights:
    """The shipped weights ``name``; an unknown name says which there are."""
    table = shipped_weights(root)
    if name not in table:
        available = ", ".join(sorted(table)) or "none"
        raise ResnetCifarError(f"no pretrained weights named {name!r}: available are {available}")
    return table[name]


def pretrained_weights(name: str, root: Path = PRETRAINED_DIR) -> Path:
    """The verified ``model.safetensors`` of pretrained ``name``."""
    return find_shipped(name, root).path()
