"""The paper's CIFAR-10 training settings (He et al. 2015, sec. 4.2), scaled to any number of epochs."""
from __future__ import annotations

from typing import Any

from ..training.config import TrainConfig
from ..training.recipes import RECIPES, recipe_config

# 64k steps at batch 128 on the 45k images left by the paper's 45k/5k split: 182 epochs.
PAPER_EPOCHS: int = RECIPES["paper"][1]["epochs"]
PAPER_VAL_SPLIT: int = RECIPES["paper"][1]["val_split"]


def paper_config(model: str, epochs: int = PAPER_EPOCHS, **overrides: Any) -> TrainConfig:
    """The paper's recipe for ``model``: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, crop + flip, 5,000
    training images held out, learning rate / 10 at half and three quarters of the run (32k and 48k of 64k steps).
    """
    return recipe_config("paper", **{"model": model, "epochs": epochs, **overrides})
