"""resnet-cifar: train, evaluate, inspect and serve residual networks on CIFAR-10 and CIFAR-100."""
from __future__ import annotations

import importlib
from typing import Any

from .errors import ResnetCifarError
from .models import create_model, list_models

__version__ = "0.1.0"

# Training, evaluation and plotting pull in matplotlib and friends: load them on first use, so that
# `import resnet_cifar` and quick commands such as `resnet-cifar models` stay fast.
_LAZY = {"TrainConfig": ".training.config", "train": ".training.trainer", "Callback": ".training.callbacks",
         "evaluate": ".inference.evaluate", "predict": ".inference.predict", "export": ".inference.export",
         "load_trained_model": ".inference.loading", "resolve_source": ".core.source",
         "load_cifar": ".data", "load_dataset": ".data",
         "load_pretrained": ".inference.pretrained", "list_pretrained": ".models.weights"}

__all__ = ["ResnetCifarError", "create_model", "list_models", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'resnet_cifar' has no attribute {name!r}")
