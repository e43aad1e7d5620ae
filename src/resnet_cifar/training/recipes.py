"""Named training recipes: groups of settings, each overridable by an explicit option."""
from __future__ import annotations

from typing import Any

from ..errors import ResnetCifarError
from .config import TrainConfig

RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("ResNet-18, SGD + Nesterov, batch 512, one-cycle to lr 0.2, label smoothing 0.1, 30 epochs; "
                "90.0-90.2% on our CIFAR-10 copy in 53-73 s of wall clock on an H100 (the seeds' recipe: 90.1% in "
                "325 s). On a CPU give --batch-size 128, same lr (a CPU trains as many images/s at 128 as at 512, "
                "so 4x the steps): ResNet-20 with --epochs 50 reached 87.99-88.48% (2 seeds) in 52-53 min on 2 "
                "AVX-512 cores, where the paper's recipe takes 170-173 min there for its 87.68%", {}),
    "fast": ("ResNet-18 in 10 epochs: batch 512, one-cycle, label smoothing 0.1, channels-last. On a CPU give "
             "--batch-size 128: ResNet-20 reached 83.99-84.06% (2 seeds) in 10.1 min on 2 AVX-512 cores, the "
             "seeds' SGD recipe's final 83.71% 4.9x sooner than its 50 min there. (On an H100, 15 epochs of it "
             "gave ResNet-18 88.2% in 27-38 s; 10 epochs are not measured there.)",
             {"epochs": 10, "channels_last": True}),
    "speedrun": ("what pays on a CPU of the speed record line's (airbench's) ingredients, by the ablation in "
                 "BENCHMARKS.md 'The speedrun recipe': ResNet-9 at width 32, batch 128, one-cycle to lr 0.2, "
                 "translate by up to 2 pixels with reflected borders, alternating flips, BatchNorm scales fixed "
                 "with a 64x learning rate for the biases, 15 epochs, channels-last (and bf16 where the CPU has "
                 "it); the last epoch also measured with airbench's flip-translate TTA. On 2 AVX-512 cores: 89.34% "
                 "(90.54% with TTA) in 25 min, airbench94's 90.48% (with its TTA) at 1.41x its wall time there. "
                 "(Label smoothing 0.2 and EMA did not pay.)",
                 {"model": "resnet9-w32", "batch_size": 128, "crop_padding": 2, "pad_mode": "reflect",
                  "flip": "alternate", "train_norm_scale": False, "bias_lr_scale": 64.0, "epochs": 15,
                  "channels_last": True, "tta": "flip-translate"}),
    "seeds-adam": ("the seed posts' Adam run: lr 1e-3, no weight decay, no augmentation, batch 128, 50 epochs",
                   {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "augment": False,
                    "label_smoothing": 0.0, "batch_size": 128, "epochs": 50}),
    "seeds-sgd": ("the seed posts' SGD run: lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 50 epochs, flip "
                  "only, lr x0.1 after 3 epochs in which the training loss fell by less than 10 percent (plateau)",
                  {"lr": 0.1, "nesterov": False, "schedule": "plateau", "patience": 3, "plateau_threshold": 0.1,
                   "label_smoothing": 0.0, "batch_size": 128, "epochs": 50, "crop_padding": 0}),
    "paper": ("He et al. 2015, CIFAR-10 (sec. 4.2): ResNet-20, batch 128, lr 0.1, weight decay 1e-4, x0.1 at "
              "32k and 48k steps of 64k, 45k/5k train/val split",
              {"model": "resnet20", "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "nesterov": False,
               "schedule": "multistep", "milestones": [91, 137], "epochs": 182, "label_smoothing": 0.0,
               "val_split": 5000}),
}


def recipe_config(name: str = "default", **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name`` with ``overrides`` applied on top.

    A recipe's learning-rate milestones are fractions of its length: with another ``epochs`` (and no
    ``milestones`` given) they move with it, e.g. the paper's 91 and 137 of 182 epochs become 10 and 15 of 20.
    """
    if name not in RECIPES:
        raise ResnetCifarError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    settings = {**RECIPES[name][1], **overrides, "recipe": name}
    recipe_epochs = RECIPES[name][1].get("epochs", TrainConfig.epochs)
    if "epochs" in overrides and "milestones" not in overrides and settings.get("milestones"):
        settings["milestones"] = sorted({round(m * overrides["epochs"] / recipe_epochs) for m in settings["milestones"]}
                                        - {0, overrides["epochs"]})
        if not settings["milestones"] and "schedule" not in overrides:
            settings["schedule"] = "constant"
    return TrainConfig(**settings)
