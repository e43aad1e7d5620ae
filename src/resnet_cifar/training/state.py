"""Where a training run stands, and what its checkpoint holds: ``state_dict()`` and ``load_state_dict()``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.checkpoint import clean_state_dict, restore_rng, rng_state
from ..core.saved_model import model_info
from ..models.layouts import with_zero_pad
from .build import RunParts
from .loop import EpochTally

# What a checkpoint must hold to be resumed.
RESUME_KEYS = {"config", "epoch", "model", "tally", "optimizer", "scheduler", "scaler", "ema", "rng", "history",
               "best_val_acc"}


@dataclass
class TrainState:
    """The progress of a run (finished epochs, the epoch in progress, metrics so far) over its parts."""

    parts: RunParts
    epoch: int = 0  # finished epochs
    tally: EpochTally | None = None  # the epoch in progress, when stopped part-way
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float = -1.0

    @property
    def batches_per_epoch(self) -> int:
        return len(self.parts.train_loader)

    @property
    def global_batch(self) -> int:
        """Training batches consumed since the start of the run."""
        return self.epoch * self.batches_per_epoch + (self.tally.batches if self.tally else 0)

    @property
    def mid_epoch(self) -> bool:
        """Whether the epoch in progress has batches left."""
        return self.tally is not None and 0 < self.tally.batches < self.batches_per_epoch

    def position(self) -> str:
        """Where the run stands, in words."""
        if self.tally is not None and self.tally.batches:
            return f"batch {self.tally.batches} of {self.batches_per_epoch} in epoch {self.epoch + 1}"
        return f"the end of epoch {self.epoch}"

    def info(self) -> dict[str, Any]:
        """``model.json``: what rebuilding and using the exported weights needs."""
        parts, config = self.parts, self.parts.config
        options = with_zero_pad(config.model, config.model_options)  # the layout written out, not implied
        return model_info(config.model, options, parts.data.train.class_names, parts.data.train.image_size,
                          parts.mean, parts.std, dataset=config.dataset, epochs_trained=self.epoch,
                          config=config.to_dict())

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run stands, mid-epoch included (a collective with
        several processes: the epoch's sums are every rank's)."""
        parts = self.parts
        return {
            "config": parts.config.to_dict(), "epoch": self.epoch,
            "model": clean_state_dict(parts.model.state_dict()),
            "tally": self.tally.reduced().state_dict() if self.tally is not None else None,
            "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.scaler.state_dict(), "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "rng": rng_state(parts.device), "cpu_threads": torch.get_num_threads(),
            "history": self.history, "best_val_acc": self.best_val_acc, "model_info": self.info(),
            "batches_per_epoch": self.batches_per_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``."""
        parts = self.parts
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # a bf16 or float32 run saves its (disabled) scaler empty
            parts.scaler.load_state_dict(state["scaler"])
        if parts.ema is not None:
            parts.ema.load_state_dict(state["ema"])
        restore_rng(state["rng"], parts.device)
        self.epoch, self.history, self.best_val_acc = state["epoch"], state["history"], state["best_val_acc"]
        self.tally = EpochTally.from_state(state["tally"], parts.device) if state["tally"] else None
        if self.tally is not None and not parts.world.is_main:  # the saved sums are every rank's: count them once
            self.tally.seen, self.tally.loss_sum, self.tally.correct = 0, torch.zeros((), device=parts.device), \
                torch.zeros((), dtype=torch.long, device=parts.device)

    def weights_are_finite(self) -> bool:
        """Whether every weight and BatchNorm statistic (of the EMA copy too) is finite on this process."""
        models = [self.parts.model] + ([self.parts.ema.module] if self.parts.ema is not None else [])
        tensors = [t for m in models for t in m.state_dict().values() if t.is_floating_point()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
