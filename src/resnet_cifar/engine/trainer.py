"""``train(config)``: build everything a run needs, train epoch by epoch, keep the results in the run folder."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import ImageSet, load_dataset, split_validation
from ..data.loader import NO_AUGMENT, Augment, BatchLoader
from ..errors import ResnetCifarError
from ..log import notice
from ..models import create_model
from .callbacks import Callback, ConsoleLog, CsvLog, CurvesPlot, TensorBoardLog, tensorboard_available
from .checkpoint import clean_state_dict, export_model, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import resolve_amp, resolve_device
from .io import atomic_write_json
from .loop import predict_batches, train_epoch
from .optim import build_optimizer, build_scheduler
from .trained import model_info

# Evaluation batch size, fixed so that training-time and ``eval`` figures come from identical batches.
EVAL_BATCH_SIZE = 500


@dataclass
class Splits:
    """The data of one run; ``val`` is held out of the training images (``--val-split``)."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet


def load_splits(config: TrainConfig) -> Splits:
    """Train/val/test images of the configured dataset."""
    size = (config.image_size, config.image_size)
    train = load_dataset(config.dataset, "train", config.data_dir, image_size=size)
    test = load_dataset(config.dataset, "test", config.data_dir, image_size=size, class_names=train.class_names)
    val = None
    if config.val_split:
        train, val = split_validation(train, config.val_split, config.seed)
    return Splits(train, val, test)


def new_run_folder(config: TrainConfig) -> Path:
    """The run folder for a fresh run: ``--out`` or ``runs/MODEL-DATASET-TIME``; never one holding a run."""
    folder = Path(config.out or f"runs/{config.model}-{config.dataset}-{datetime.now():%Y%m%d-%H%M%S}")
    if (folder / "config.json").exists() or (folder / "last.pt").exists():
        raise ResnetCifarError(f"{folder} already holds a run: continue it with --resume {folder} "
                               f"or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def environment(device: torch.device) -> dict[str, str]:
    """Versions and device recorded with every run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or device.type
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "device": str(device), "device_name": name}


class Run:
    """A training run: model, optimizer, schedule, EMA and data loaders, built from one ``TrainConfig``."""

    def __init__(self, config: TrainConfig, folder: Path, quiet: bool = False) -> None:
        self.config, self.folder = config, folder
        self.device = resolve_device(config.device)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self.data = load_splits(config)
        self.mean, self.std = self.data.train.channel_stats()
        torch.manual_seed(config.seed)
        self.model = create_model(config.model, num_classes=len(self.data.train.class_names),
                                  **config.model_options).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        augment = Augment(config.crop_padding, True, config.cutout) if config.augment else NO_AUGMENT
        self.train_loader = self._loader(self.data.train, config.batch_size, shuffle=True, augment=augment)
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(config, self.optimizer, len(self.train_loader))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
                    if config.ema else None)
        self.network: nn.Module = torch.compile(self.model) if config.compile else self.model
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.best_val_acc = -1.0
        self.console = ConsoleLog(config.epochs, quiet)
        self.callbacks: list[Callback] = [self.console, CsvLog(folder / "metrics.csv"), CurvesPlot(folder / "curves.png")]
        if tensorboard_available():
            self.callbacks.append(TensorBoardLog(folder))

    def _loader(self, data: ImageSet, batch_size: int, shuffle: bool = False, augment: Augment = NO_AUGMENT,
                ) -> BatchLoader:
        return BatchLoader(data, batch_size, device=self.device, mean=self.mean, std=self.std, shuffle=shuffle,
                           augment=augment, seed=self.config.seed, drop_last=shuffle,
                           channels_last=self.config.channels_last)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA copy when ``--ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def info(self) -> dict[str, Any]:
        """``model.json``: what rebuilding and using the exported weights needs."""
        return model_info(self.config.model, self.config.model_options, self.data.train.class_names,
                          self.data.train.image_size, self.mean, self.std, dataset=self.config.dataset,
                          epochs_trained=self.epoch, config=self.config.to_dict())

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run stands."""
        return {
            "config": self.config.to_dict(), "epoch": self.epoch, "model": clean_state_dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "history": self.history, "best_val_acc": self.best_val_acc, "model_info": self.info(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint written by ``state()``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.epoch, self.history, self.best_val_acc = state["epoch"], state["history"], state["best_val_acc"]

    def after_step(self) -> None:
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def evaluate(self, data: ImageSet) -> tuple[float, float]:
        """(loss, accuracy) of the evaluated weights on ``data``, in float32."""
        predictions = predict_batches(self.eval_model, self._loader(data, EVAL_BATCH_SIZE).epoch())
        return predictions.loss, predictions.accuracy

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, evaluate, and return its metrics row."""
        start = time.perf_counter()
        self.epoch += 1
        self.console.start_epoch(self.epoch, len(self.train_loader))
        stats = train_epoch(self.network, self.train_loader.epoch(self.epoch), self.optimizer,
                            criterion=self.criterion, scaler=self.scaler, amp_dtype=self.amp_dtype,
                            after_step=self.after_step,
                            progress=lambda *p: self.console.progress(*p, lr=self.lr))
        row: dict[str, Any] = {"epoch": self.epoch, "train_loss": stats.loss, "train_acc": stats.accuracy}
        if self.data.val is not None:
            row["val_loss"], row["val_acc"] = self.evaluate(self.data.val)
        row["test_loss"], row["test_acc"] = self.evaluate(self.data.test)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # Never steer on the test set: the plateau watches the validation loss, or the training loss.
            self.scheduler.step(row.get("val_loss", stats.loss))
        row["lr"], row["epoch_seconds"] = self.lr, time.perf_counter() - start
        row["elapsed_seconds"] = row["epoch_seconds"] + (self.history[-1]["elapsed_seconds"] if self.history else 0.0)
        self.history.append(row)
        return row

    def save(self, row: dict[str, Any]) -> None:
        """Checkpoint, exported weights and every report of the finished epoch."""
        improved = self.data.val is not None and row["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc = row["val_acc"]
        state = self.state()
        save_checkpoint(self.folder / "last.pt", state)
        if improved:
            save_checkpoint(self.folder / "best.pt", state)
        export_model(self.folder, self.eval_model.state_dict(), self.info())
        for callback in self.callbacks:
            callback.on_epoch_end(row, self.history)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          stop_after: int | None = None) -> Path:
    """Train per ``config`` (or continue the run folder ``resume`` with its saved config); returns the run folder.

    ``stop_after`` ends this call after that many epochs, leaving the run resumable with the same schedule.
    """
    if resume is not None:
        folder = Path(resume)
        state = load_checkpoint(folder / "last.pt")
        config = TrainConfig.from_dict(state["config"])
    elif config is not None:
        folder, state = new_run_folder(config), None
    else:
        raise ResnetCifarError("give a TrainConfig, or a run folder to resume")
    run = Run(config, folder, quiet)
    if state is not None:
        run.restore(state)
        notice(f"resuming {folder} after epoch {run.epoch} of {config.epochs}")
    atomic_write_json(folder / "config.json", {**config.to_dict(), "environment": environment(run.device)})
    try:
        done_here = 0
        while run.epoch < config.epochs and (stop_after is None or done_here < stop_after):
            run.save(run.run_epoch())
            done_here += 1
    finally:
        run.close()
    if run.epoch < config.epochs and not quiet:
        print(f"stopped after epoch {run.epoch} of {config.epochs}; continue with: "
              f"resnet-cifar train --resume {folder}")
    return folder
