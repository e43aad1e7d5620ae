"""Shipped weights (``models.weights``, the table ``--pretrained`` reads) loaded for use, and new ones added."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..core.checkpoint import read_model_files
from ..core.source import ModelSource
from ..files import atomic_write_json, file_sha256
from ..models.weights import MANIFEST, PRETRAINED_DIR, find_shipped, pretrained_manifest
from .loading import load_trained_model
from .trained import TrainedModel


def load_pretrained(name: str, device: torch.device | str = "cpu", *, root: Path = PRETRAINED_DIR) -> TrainedModel:
    """The shipped weights ``name`` (see ``list_pretrained()``) as a ``TrainedModel`` in eval mode.

    ``.model`` is the network; ``.class_names``, ``.mean`` and ``.std`` say how to feed it and read its output.
    """
    shipped = find_shipped(name, root)
    return load_trained_model(ModelSource(shipped.path(), shipped), device)


def add_pretrained(source: str | Path, name: str, *, test_accuracy: float, evaluated_on: str,
                   train_minutes: float, command: str, card: dict[str, Any] | None = None,
                   root: Path = PRETRAINED_DIR) -> dict[str, Any]:
    """Copy the exported weights of a run or model folder into ``root/name/`` and record them in the manifest.

    ``test_accuracy`` is the accuracy measured on the test set that ``evaluated_on`` describes in words a user
    understands; ``command`` the one that trained the weights; ``card`` its model card
    (``model_card.measure_card``). Returns the new manifest entry.
    """
    weights = Path(source) / "model.safetensors"
    _, info = read_model_files(weights)  # refuses files that are not a complete resnet-cifar model
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, target / "model.safetensors")
    # The training machine's data folder means nothing to a user: evaluation looks in ./data by default.
    config = {**info.get("config", {}), "data_dir": "data", "out": ""}
    atomic_write_json(target / "model.json", {**info, "config": config})
    entry = {"file": f"{name}/model.safetensors", "sha256": file_sha256(target / "model.safetensors"),
             "info_sha256": file_sha256(target / "model.json"),
             "model": info["model"], "dataset": info.get("dataset"), "test_accuracy": round(test_accuracy, 4),
             "evaluated_on": evaluated_on, "epochs": config.get("epochs"), "train_minutes": round(train_minutes, 1),
             "command": command, **({"card": card} if card else {})}
    manifest = pretrained_manifest(root) if (root / MANIFEST).is_file() else {}
    atomic_write_json(root / MANIFEST, {**manifest, name: entry})
    return entry


def half_precision_copy(source: str | Path, out: str | Path) -> Path:
    """The model folder ``out``: ``source``'s weights stored in float16 (half the bytes; they load into float32
    parameters) with its ``model.json``. Whether that costs accuracy is for the caller to measure."""
    weights, info = read_model_files(Path(source))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({key: value.half() if value.is_floating_point() else value for key, value in weights.items()},
              str(out / "model.safetensors"))
    atomic_write_json(out / "model.json", info)
    return out
