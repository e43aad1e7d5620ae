"""``load_trained_model``: any model source (folder, checkpoint, weights file, exported file, shipped weights) as a
``TrainedModel``, the one object ``evaluate``, ``predict``, ``export`` and ``serve`` take."""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.saved_model import rebuild_model
from ..core.source import ModelSource, resolve_source
from .trained import TrainedModel


def load_trained_model(source: str | Path | ModelSource, device: torch.device | str = "cpu", *,
                       without_temperature: bool = False) -> TrainedModel:
    """Rebuild the model saved in a run folder, a ``model.safetensors`` or a ``.pt`` checkpoint, or load a file
    written by ``resnet-cifar export`` (run by its runtime on the CPU). ``without_temperature``: the model as
    trained, its fitted temperature left out (saved models only)."""
    source = resolve_source(source)
    if source.is_exported:
        from .exported import load_exported  # the runtimes are optional: imported when asked for

        return load_exported(source, torch.device(device))
    model, info = rebuild_model(source.path, without_temperature=without_temperature)
    return TrainedModel(model.to(device), info, source=source)
