"""The paper's CIFAR-10 training settings (He et al. 2015, sec. 4.2), scaled to any number of epochs."""
from __future__ import annotations

from typing import Any

from ..engine.config import TrainConfig
from ..engine.recipes import recipe_config

# 64k steps at batch 128 on 50k images: about 164 epochs, learning rate / 10 at 32k and 48k steps.
PAPER_EPOCHS = 164
MILESTONE_FRACTIONS = (0.5, 0.75)


def paper_milestones(epochs: int) -> list[int]:
    """Epochs at which the learning rate drops, at the paper's 32k/64k and 48k/64k of the run."""
    return sorted({round(epochs * f) for f in MILESTONE_FRACTIONS} - {0, epochs})


def paper_config(model: str, epochs: int = PAPER_EPOCHS, **overrides: Any) -> TrainConfig:
    """The paper's recipe for ``model``: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, crop + flip.

    The 45k/5k split the paper used to pick its schedule is off unless ``val_split`` is given.
    """
    milestones = paper_milestones(epochs)
    schedule = {"schedule": "multistep", "milestones": milestones} if milestones else {"schedule": "constant",
                                                                                      "milestones": []}
    return recipe_config("paper", **{"model": model, "epochs": epochs, "val_split": 0, **schedule, **overrides})
