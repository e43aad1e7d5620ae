"""Optimizers and learning-rate schedules built from a ``TrainConfig``."""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from .config import TrainConfig

# Share of the run spent warming up when --schedule onecycle is given no --warmup-epochs.
ONECYCLE_WARMUP_SHARE = 0.15

Scheduler = LRScheduler | ReduceLROnPlateau


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov), Adam or AdamW over every trained parameter, with weight decay.

    Without ``decay_norm_and_bias``, or with a ``bias_lr_scale``, the one-dimensional parameters (BatchNorm weights
    and biases, every bias) form a second group: without weight decay, or at ``bias_lr_scale`` times the learning
    rate and the weight decay divided by it. Parameters that do not require gradients (``--no-train-norm-scale``)
    are left out. On CUDA the fused implementation is used where this torch has one (one kernel for all
    parameters).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [{"params": params}]
    if not config.decay_norm_and_bias or config.bias_lr_scale != 1:
        scale = config.bias_lr_scale
        decay = config.weight_decay / scale if config.decay_norm_and_bias else 0.0
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "lr": config.lr * scale, "weight_decay": decay}]
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    options: dict = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        options.update(momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0)
    if params and params[0].is_cuda and "fused" in inspect.signature(kind).parameters:
        options["fused"] = True
    return kind(groups, **options)


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of linear warm-up."""
    epochs = config.warmup_epochs
    if epochs is None:
        epochs = ONECYCLE_WARMUP_SHARE * config.epochs if config.schedule == "onecycle" else 0.0
    return round(epochs * steps_per_epoch)


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the base learning rate after ``step`` optimizer steps, for per-step schedules."""
    total = config.epochs * steps_per_epoch
    warmup = warmup_steps(config, steps_per_epoch)
    milestones = [m * steps_per_epoch for m in config.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if config.schedule == "onecycle":
            return max(0.0, 1.0 - progress)
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if config.schedule == "multistep":
            return config.gamma ** sum(step >= m for m in milestones)
        return 1.0

    return factor


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Scheduler:
    """A per-step ``LambdaLR``, or for ``plateau`` a per-epoch ``ReduceLROnPlateau`` on the monitored loss."""
    if config.schedule == "plateau":
        return ReduceLROnPlateau(optimizer, mode="min", factor=config.gamma, patience=config.patience,
                                 threshold=config.plateau_threshold)
    return LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
