"""The paper's CIFAR-10 training settings (He et al. 2015, sec. 4.2), scaled to any number of epochs."""
from __future__ import annotations

from typing import Any

from ..training.config import TrainConfig
from ..training.recipes import recipe_config

# 64k steps at batch 128 on 50k images: about 164 epochs.
PAPER_EPOCHS = 164


def paper_config(model: str, epochs: int = PAPER_EPOCHS, **overrides: Any) -> TrainConfig:
    """The paper's recipe for ``model``: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, crop + flip, learning
    rate / 10 at half and three quarters of the run (32k and 48k of 64k steps).

    The 45k/5k split the paper used to pick its schedule is off unless ``val_split`` is given.
    """
    return recipe_config("paper", **{"model": model, "epochs": epochs, "val_split": 0, **overrides})
