"""Weights trained by this project and shipped inside the package, listed in ``pretrained/manifest.json``.

The manifest maps a name to a ``model.safetensors`` (with its ``model.json`` beside it), both files' SHA-256
and how it was trained. Weights for more models join by adding files and a manifest entry
(``add_pretrained``); no code changes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ResnetCifarError
from ..files import atomic_write_json
from .checkpoint import read_model_files
from .trained import TrainedModel, load_trained_model

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = "manifest.json"


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


def list_pretrained(root: Path = PRETRAINED_DIR) -> list[str]:
    """Names that ``load_pretrained`` accepts."""
    return sorted(pretrained_manifest(root))


def pretrained_weights(name: str, root: Path = PRETRAINED_DIR) -> Path:
    """The verified ``model.safetensors`` of pretrained ``name`` (its SHA-256 must match the manifest)."""
    manifest = pretrained_manifest(root)
    if name not in manifest:
        available = ", ".join(sorted(manifest)) or "none"
        raise ResnetCifarError(f"no pretrained weights named {name!r}: available are {available}")
    entry = manifest[name]
    path = (root / str(entry.get("file"))).resolve()
    if not path.is_relative_to(root.resolve()) or path.name != "model.safetensors":
        raise ResnetCifarError(f"the manifest entry of {name!r} points outside the package's pretrained "
                               f"folder: reinstall resnet-cifar")
    # Both files are checked: model.json says what the outputs mean (class names) and how to preprocess.
    for file, key in ((path, "sha256"), (path.with_name("model.json"), "info_sha256")):
        if not file.is_file():
            raise ResnetCifarError(f"the pretrained file {file} is missing: reinstall resnet-cifar")
        if _sha256(file) != entry.get(key):
            raise ResnetCifarError(f"the pretrained file {file} does not match its checksum (damaged or changed): "
                                   f"reinstall resnet-cifar")
    return path


def load_pretrained(name: str, device: torch.device | str = "cpu", *, root: Path = PRETRAINED_DIR) -> TrainedModel:
    """The shipped weights ``name`` (see ``list_pretrained()``) as a ``TrainedModel`` in eval mode.

    ``.model`` is the network; ``.class_names``, ``.mean`` and ``.std`` say how to feed it and read its output.
    """
    return load_trained_model(pretrained_weights(name, root), device)


def add_pretrained(source: str | Path, name: str, *, test_accuracy: float, evaluated_on: str,
                   train_minutes: float, command: str, root: Path = PRETRAINED_DIR) -> dict[str, Any]:
    """Copy the exported weights of a run folder into ``root/name/`` and record them in the manifest.

    ``test_accuracy`` is the accuracy measured on the test set that ``evaluated_on`` describes; ``command``
    the one that trained the weights. Returns the new manifest entry.
    """
    weights = Path(source) / "model.safetensors"
    _, info = read_model_files(weights)  # refuses files that are not a complete resnet-cifar model
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, target / "model.safetensors")
    # The training machine's data folder means nothing to a user: evaluation looks in ./data by default.
    config = {**info.get("config", {}), "data_dir": "data", "out": ""}
    atomic_write_json(target / "model.json", {**info, "config": config})
    entry = {"file": f"{name}/model.safetensors", "sha256": _sha256(target / "model.safetensors"),
             "info_sha256": _sha256(target / "model.json"),
             "model": info["model"], "dataset": info.get("dataset"), "test_accuracy": round(test_accuracy, 4),
             "evaluated_on": evaluated_on, "epochs": config.get("epochs"), "train_minutes": round(train_minutes, 1),
             "command": command}
    manifest = pretrained_manifest(root) if (root / MANIFEST).is_file() else {}
    atomic_write_json(root / MANIFEST, {**manifest, name: entry})
    return entry


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
