"""The one configuration object of a training run: built from the command line, saved in every run folder."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResnetCifarError
from ..models import model_options

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "multistep", "plateau", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's; reduce-overhead = CUDA graphs


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are a ResNet-18 recipe for CIFAR-10 on one GPU."""

    recipe: str = "default"
    model: str = "resnet18"
    dataset: str = "cifar10"
    data_dir: str = "data"
    download: bool = True
    out: str = ""
    epochs: int = 30
    batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: str = "onecycle"
    warmup_epochs: float | None = None
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    patience: int = 10
    plateau_threshold: float = 1e-4  # relative fall that counts as better (torch's default)
    label_smoothing: float = 0.1
    augment: bool = True
    crop_padding: int = 4
    cutout: int = 0
    val_split: int = 0
    train_subset: int = 0
    amp: str = "auto"
    channels_last: bool | None = None  # None: on for CUDA GPUs, off elsewhere (engine.device)
    compile: bool = False
    compile_mode: str = "default"
    sync_bn: bool = False
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 0
    skip_nonfinite: bool = False
    device: str = "auto"
    image_size: int = 32
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ResnetCifarError`` naming the first setting that cannot work."""
        unknown = sorted(set(self.model_options) - set(model_options(self.model)))  # also rejects unknown models
        if unknown:
            raise ResnetCifarError(f"{self.model} takes no option {', '.join(unknown)}")
        require_positive_int("epochs", self.epochs)
        require_positive_int("batch_size", self.batch_size)
        require_positive_int("image_size", self.image_size)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("device", self.device, DEVICES)
        _choice("compile_mode", self.compile_mode, COMPILE_MODES)
        if self.compile_mode != "default" and not self.compile:
            raise ResnetCifarError(f"--compile-mode {self.compile_mode} needs --compile")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ResnetCifarError(f"--lr must be a positive number, got {self.lr}")
        for name in ("momentum", "weight_decay", "label_smoothing", "ema_decay", "gamma", "plateau_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.label_smoothing >= 1 or self.ema_decay >= 1:
            raise ResnetCifarError("--label-smoothing and --ema-decay must be below 1")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs < self.epochs:
            raise ResnetCifarError(f"--warmup-epochs must lie in [0, {self.epochs}), got {self.warmup_epochs}")
        if self.schedule == "multistep" and not self.milestones:
            raise ResnetCifarError("--schedule multistep needs --milestones, e.g. --milestones 15 25")
        if any(m <= 0 or m >= self.epochs for m in self.milestones) or self.milestones != sorted(self.milestones):
            raise ResnetCifarError(f"--milestones must increase and lie between 1 and {self.epochs - 1} (the epochs)")
        if self.schedule in ("multistep", "plateau") and not 0 < self.gamma < 1:
            raise ResnetCifarError(f"--gamma must lie in (0, 1) for --schedule {self.schedule}, got {self.gamma}")
        if self.channels_last not in (None, True, False):
            raise ResnetCifarError(f"channels_last must be true, false or null (auto), got {self.channels_last!r}")
        for name in ("val_split", "train_subset", "crop_padding", "cutout", "patience", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        for name in ("crop_padding", "cutout"):  # beyond the image side they only cost memory (a padded copy)
            if getattr(self, name) > self.image_size:
                raise ResnetCifarError(f"--{name.replace('_', '-')} must be at most the image side "
                                       f"({self.image_size}), got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ResnetCifarError(f"--seed must be an integer from 0 to {2**32 - 1}, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by ``to_dict``; settings this version does not know are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ResnetCifarError(f"the saved config has settings this version does not know: {', '.join(unknown)}")
        return cls(**values)


def require_positive_int(name: str, value: int) -> None:
    """Raise the one-line error of option ``--name`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResnetCifarError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ResnetCifarError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
