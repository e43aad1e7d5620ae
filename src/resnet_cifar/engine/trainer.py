"""``train(config)``: build everything a run needs, train epoch by epoch, keep the results in the run folder."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..data import ImageSet, load_dataset, split_validation
from ..data.imageset import balanced_split
from ..data.loader import NO_AUGMENT, Augment, BatchLoader
from ..errors import ResnetCifarError, require_positive_int
from ..log import notice
from ..models import create_model
from . import faults
from .callbacks import Callback, ConsoleLog, CsvLog, CurvesPlot, TensorBoardLog, tensorboard_available
from .checkpoint import clean_state_dict, export_model, load_checkpoint, restore_rng, rng_state, save_checkpoint
from .config import TrainConfig
from .device import resolve_amp, resolve_channels_last, resolve_device, set_determinism
from .distributed import (DeferredMax, World, barrier, convert_sync_batchnorm, device_of_rank, max_across_ranks,
                          process_group, sum_across_ranks, world_from_environment)
from .ema import EMA
from .interrupt import StopRequests, TrainingInterrupted
from .io import atomic_write_json
from .loop import EVAL_BATCH_SIZE, EpochTally, NonFiniteLoss, predict_batches, train_epoch
from .optim import build_optimizer, build_scheduler
from .runfolder import RunLock, default_run_folder, environment, holds_run, prepare_new_run
from .threads import follow_saved_threads
from .trained import model_info

# What a checkpoint must hold to be resumed (``Run.state``).
RESUME_KEYS = {"config", "epoch", "model", "tally", "optimizer", "scheduler", "scaler", "ema", "rng", "history",
               "best_val_acc"}
# With several processes a stop signal is acted on at the same step everywhere: the ranks compare notes
# every STOP_CHECK_EVERY steps (one small collective, not one per step).
STOP_CHECK_EVERY = 20


class _StopRequested(Exception):
    """Raised inside the training loop when a signal asked training to stop."""


@dataclass
class Splits:
    """The data of one run; ``val`` is held out of the training images (``--val-split``)."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet


def load_splits(config: TrainConfig) -> Splits:
    """Train/val/test images of the configured dataset."""
    size = (config.image_size, config.image_size)
    train = load_dataset(config.dataset, "train", config.data_dir, image_size=size, download=config.download)
    test = load_dataset(config.dataset, "test", config.data_dir, image_size=size, class_names=train.class_names,
                        download=config.download)
    val = None
    if config.val_split:
        train, val = split_validation(train, config.val_split, config.seed)
    if config.train_subset and config.train_subset < len(train):
        train = balanced_split(train, config.train_subset, config.seed, "--train-subset")[1]
    return Splits(train, val, test)


class Run:
    """A training run: model, optimizer, schedule, EMA and data loaders, built from one ``TrainConfig``."""

    def __init__(self, config: TrainConfig, folder: Path, stop: StopRequests, quiet: bool = False,
                 world: World = World()) -> None:
        self.config, self.folder, self.stop, self.world = config, folder, stop, world
        self.device = device_of_rank(resolve_device(config.device), world)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self.channels_last = resolve_channels_last(config.channels_last, self.device)
        set_determinism(config.deterministic, self.device)
        if world.distributed and config.skip_nonfinite:
            raise ResnetCifarError("--skip-nonfinite works in one process only: the ranks would skip different "
                                   "batches and drift apart")
        self.data = self._load_splits()
        self.mean, self.std = self.data.train.channel_stats()
        torch.manual_seed(config.seed)
        self.model = create_model(config.model, num_classes=len(self.data.train.class_names),
                                  **config.model_options).to(self.device)
        if config.sync_bn and world.distributed:
            self.model = convert_sync_batchnorm(self.model, self.device)
        elif config.sync_bn and not quiet:
            notice("--sync-bn has nothing to synchronise in one process: start several with torchrun")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        augment = Augment(config.crop_padding, True, config.cutout) if config.augment else NO_AUGMENT
        self.train_loader = self._loader(self.data.train, config.batch_size, shuffle=True, augment=augment)
        # Each rank evaluates its own slice of the evaluation images; the sums are added up across ranks.
        self.eval_loaders = {split: self._loader(self._shard(data), EVAL_BATCH_SIZE)
                             for split, data in (("val", self.data.val), ("test", self.data.test)) if data is not None}
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(config, self.optimizer, len(self.train_loader))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = EMA(self.model, config.ema_decay) if config.ema else None
        self.network: nn.Module = self.model
        if world.distributed:
            # Gradients share the buckets' memory (no copy per step); with --sync-bn the BatchNorm statistics are
            # already the same on every rank, so they need no broadcast before each forward.
            self.network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=not config.sync_bn, gradient_as_bucket_view=True)
        if config.compile:
            self.network = torch.compile(self.network, mode=config.compile_mode)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # finished epochs
        self.tally: EpochTally | None = None  # the epoch in progress, when stopped part-way
        self.best_val_acc = -1.0
        self.stop_signal: int | None = None  # the signal every rank agreed to stop for
        self.stop_votes = DeferredMax(self.device)
        self.start_clock()
        self.console = ConsoleLog(config.epochs, quiet or not world.is_main)
        self.callbacks: list[Callback] = [self.console]
        if world.is_main:
            self.callbacks += [CsvLog(folder / "metrics.csv"), CurvesPlot(folder / "curves.png")]
            if tensorboard_available():
                self.callbacks.append(TensorBoardLog(folder))

    def _load_splits(self) -> Splits:
        """The data; with several processes the main one reads (and downloads) it first, then the others."""
        if not self.world.is_main:
            barrier()
        data = load_splits(self.config)
        if self.world.is_main:
            barrier()
        return data

    def _shard(self, data: ImageSet) -> ImageSet:
        """This rank's contiguous slice of ``data`` (all of it in one process)."""
        n, rank, size = len(data), self.world.rank, self.world.world_size
        return data.subset(torch.arange(n * rank // size, n * (rank + 1) // size))

    def _loader(self, data: ImageSet, batch_size: int, shuffle: bool = False, augment: Augment = NO_AUGMENT,
                ) -> BatchLoader:
        ranks = {"rank": self.world.rank, "world_size": self.world.world_size} if shuffle else {}
        return BatchLoader(data, batch_size, device=self.device, mean=self.mean, std=self.std, shuffle=shuffle,
                           augment=augment, seed=self.config.seed, drop_last=shuffle,
                           channels_last=self.channels_last, **ranks)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA copy when ``--ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @property
    def global_batch(self) -> int:
        """Training batches consumed since the start of the run."""
        return self.epoch * len(self.train_loader) + (self.tally.batches if self.tally else 0)

    def position(self) -> str:
        """Where the run stands, in words."""
        if self.tally is not None and self.tally.batches:
            return f"batch {self.tally.batches} of {len(self.train_loader)} in epoch {self.epoch + 1}"
        return f"the end of epoch {self.epoch}"

    def info(self) -> dict[str, Any]:
        """``model.json``: what rebuilding and using the exported weights needs."""
        return model_info(self.config.model, self.config.model_options, self.data.train.class_names,
                          self.data.train.image_size, self.mean, self.std, dataset=self.config.dataset,
                          epochs_trained=self.epoch, config=self.config.to_dict())

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run stands, mid-epoch included; refuses weights or
        statistics that are no longer finite, so that no file of the run ever holds them."""
        self.require_finite_weights()
        return {
            "config": self.config.to_dict(), "epoch": self.epoch, "model": clean_state_dict(self.model.state_dict()),
            "tally": self.tally.reduced().state_dict() if self.tally is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_state(self.device), "cpu_threads": torch.get_num_threads(),
            "history": self.history, "best_val_acc": self.best_val_acc, "model_info": self.info(),
        }

    def require_finite_weights(self) -> None:
        """Raise ``ResnetCifarError`` if a weight or BatchNorm statistic is NaN or infinite (the run diverged)."""
        models = [self.model] + ([self.ema.module] if self.ema is not None else [])
        tensors = [t for m in models for t in m.state_dict().values() if t.is_floating_point()]
        broken = (~torch.stack([torch.isfinite(t).all() for t in tensors]).all()).to(torch.int32)
        if not int(max_across_ranks(broken)):  # every rank decides alike, so none waits in a collective alone
            return
        last = self.folder / "last.pt"
        saved = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was saved yet"
        raise ResnetCifarError(f"the run diverged: weights or BatchNorm statistics became NaN or infinite by "
                               f"{self.position()}; nothing was saved, {saved}: lower --lr")

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint written by ``state()``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # a bf16 or float32 run saves its (disabled) scaler empty
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        restore_rng(state["rng"], self.device)
        self.epoch, self.history, self.best_val_acc = state["epoch"], state["history"], state["best_val_acc"]
        self.tally = EpochTally.from_state(state["tally"], self.device) if state["tally"] else None
        if self.tally is not None and not self.world.is_main:  # the saved sums are every rank's: count them once
            self.tally.seen, self.tally.loss_sum, self.tally.correct = 0, torch.zeros((), device=self.device), \
                torch.zeros((), dtype=torch.long, device=self.device)

    def checkpoint(self, name: str = "last.pt") -> None:
        """Save the run's state (every rank takes part in gathering it; the main one writes it)."""
        state = self.state()
        if self.world.is_main:
            save_checkpoint(self.folder / name, state)

    def stop_requested(self, boundary: bool = False) -> bool:
        """Whether a signal asked to stop. With several processes they compare notes every ``STOP_CHECK_EVERY``
        steps without waiting (each acts on the previous comparison, so all stop at the same step), and at epoch
        ends (``boundary``) waiting for the answer."""
        if not self.world.distributed:
            self.stop_signal = self.stop.signal
        elif boundary:
            self.stop_votes.finish()
            local = torch.full((), self.stop.signal or 0, device=self.device)
            self.stop_signal = int(max_across_ranks(local)) or None
        elif self.global_batch % STOP_CHECK_EVERY == 0:
            self.stop_signal = self.stop_votes.exchange(self.stop.signal or 0) or None
        return self.stop_signal is not None

    def after_step(self) -> None:
        if not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        every = self.config.checkpoint_every
        if self.stop_requested():
            self.tally.raise_if_nonfinite()
            raise _StopRequested
        if every and self.global_batch % every == 0 and self.tally.batches < len(self.train_loader):
            self.tally.raise_if_nonfinite()  # never save weights that a NaN step has touched
            self.checkpoint()
        faults.after_batch(self.global_batch)

    def evaluate(self, split: str) -> tuple[float, float]:
        """(loss, accuracy) of the evaluated weights on ``split`` (val or test), in float32, over every rank."""
        predictions = predict_batches(self.eval_model, self.eval_loaders[split].epoch())
        count = len(predictions.labels)
        sums = torch.tensor([predictions.loss * count, predictions.correct, count], dtype=torch.float64,
                            device=self.device)
        loss_sum, correct, count = sum_across_ranks(sums).tolist()
        return loss_sum / count, correct / count

    def _batches(self, start: int):
        first = self.epoch * len(self.train_loader) + start
        for index, (images, labels) in enumerate(self.train_loader.epoch(self.epoch + 1, start), first + 1):
            yield faults.poison(images, index), labels

    def _progress(self, done: int, loss: float, accuracy: float, images_per_s: float) -> None:
        self.console.progress(done, loss, accuracy, images_per_s, lr=self.lr)

    def start_clock(self) -> None:
        """(Re)start the wall clock of this process; earlier processes of a resumed run add what they recorded.

        ``epoch_seconds``/``elapsed_seconds`` count training and evaluation only; ``wall_seconds`` is the wall
        clock since training began when the row is made, so it also counts every earlier epoch's checkpoint,
        exported weights, CSV, curves and TensorBoard writes (all but this epoch's own, which follow the row).
        """
        self.clock_start = time.perf_counter()
        last = self.history[-1] if self.history else {}
        self.wall_before = last.get("wall_seconds", last.get("elapsed_seconds", 0.0))

    def run_epoch(self) -> dict[str, Any]:
        """Train the next epoch (or the rest of a stopped one), evaluate, and return its metrics row."""
        start = time.perf_counter()
        if self.tally is None:
            self.tally = EpochTally()
        self.console.start_epoch(self.epoch + 1, len(self.train_loader), self.tally.batches)
        tally = train_epoch(self.network, self._batches(self.tally.batches), self.optimizer,
                            criterion=self.criterion, scaler=self.scaler, amp_dtype=self.amp_dtype,
                            tally=self.tally, after_step=self.after_step,
                            skip_nonfinite=self.config.skip_nonfinite,
                            progress=self._progress if self.world.is_main else None)
        self.epoch += 1
        self.tally = None
        tally = tally.reduced()
        row: dict[str, Any] = {"epoch": self.epoch, "train_loss": tally.loss, "train_acc": tally.accuracy}
        for split in self.eval_loaders:
            row[f"{split}_loss"], row[f"{split}_acc"] = self.evaluate(split)
        if isinstance(self.scheduler, ReduceLROnPlateau):
            # Never steer on the test set: the plateau watches the validation loss, or the training loss.
            self.scheduler.step(row.get("val_loss", tally.loss))
        row["lr"], row["skipped_batches"] = self.lr, tally.skipped
        now = time.perf_counter()
        row["epoch_seconds"] = now - start
        row["elapsed_seconds"] = row["epoch_seconds"] + (self.history[-1]["elapsed_seconds"] if self.history else 0.0)
        row["wall_seconds"] = self.wall_before + now - self.clock_start
        self.history.append(row)
        return row

    def save(self, row: dict[str, Any]) -> None:
        """Checkpoint, exported weights and every report of the finished epoch."""
        improved = self.data.val is not None and row["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc = row["val_acc"]
        state = self.state()
        if self.world.is_main:
            save_checkpoint(self.folder / "last.pt", state)
            if improved:
                save_checkpoint(self.folder / "best.pt", state)
            export_model(self.folder, self.eval_model.state_dict(), self.info())
        for callback in self.callbacks:
            callback.on_epoch_end(row, self.history)

    def bring_reports_up_to_date(self) -> None:
        """Exported weights, metrics.csv and curves.png as of the last finished epoch, from the restored state."""
        export_model(self.folder, self.eval_model.state_dict(), self.info())
        for callback in self.callbacks:
            if isinstance(callback, (CsvLog, CurvesPlot)):
                callback.on_epoch_end(self.history[-1], self.history)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          stop_after: int | None = None, overwrite: bool = False, device: str | None = None,
          data_dir: str | None = None) -> Path:
    """Train per ``config`` (or continue the run folder ``resume`` with its saved config); returns the run folder.

    ``stop_after`` ends this call after that many epochs, leaving the run resumable with the same schedule;
    ``overwrite`` replaces a run already in ``config.out``; ``device`` and ``data_dir`` continue a resumed run on
    another device or with its dataset found elsewhere (neither changes what is computed).
    A resumed run uses the CPU thread count it was saved with, unless the user chose one (``engine.threads``).
    Ctrl-C/SIGTERM save a checkpoint and raise ``TrainingInterrupted``; a non-finite loss raises
    ``ResnetCifarError`` (see ``--skip-nonfinite``). Started by ``torchrun`` with several processes, it trains
    with DistributedDataParallel: ``batch_size`` is then the batch of all processes together, and only rank 0
    prints and writes files.
    """
    if resume is None and config is None:
        raise ResnetCifarError("give a TrainConfig, or a run folder to resume")
    if stop_after is not None:
        require_positive_int("stop_after", stop_after)
    state = None
    if resume is not None:
        folder = Path(resume)
        config, state = _resume_point(folder)
        moved = {key: value for key, value in (("device", device), ("data_dir", data_dir)) if value is not None}
        config = dataclasses.replace(config, **moved)
        if state is not None:
            follow_saved_threads(state.get("cpu_threads"))
    else:
        folder = Path(config.out or default_run_folder(config.model, config.dataset))
    world = world_from_environment()
    device = device_of_rank(resolve_device(config.device), world)
    resolve_amp(config.amp, device)  # refuse a missing device before touching disk
    quiet = quiet or not world.is_main
    created = not folder.exists()
    lock = RunLock(folder) if world.is_main else contextlib.nullcontext()
    with process_group(world, device), lock, StopRequests() as stop:
        aside = prepare_new_run(folder, overwrite) if state is None and world.is_main else None
        try:
            run = _start_run(folder, config, state, stop, quiet, world)
            try:
                _train_epochs(run, stop_after)
            finally:
                run.close()
        except BaseException:
            if created and world.is_main and not holds_run(folder):  # no empty or dead folder left behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            if aside is not None:
                aside.settle()  # the replaced run's files go once this one has a checkpoint, else come back
    if run.epoch < run.config.epochs and not quiet:
        print(f"stopped after epoch {run.epoch} of {run.config.epochs}; continue with: "
              f"resnet-cifar train --resume {folder}")
    return folder


def _resume_point(folder: Path) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The settings and checkpoint to continue ``folder`` from; a run that stopped before its first checkpoint
    starts again from its ``config.json``."""
    if (folder / "last.pt").is_file():
        state = load_checkpoint(folder / "last.pt")
        missing = sorted(RESUME_KEYS - set(state))
        if missing or not isinstance(state["config"], dict):
            raise ResnetCifarError(f"{folder / 'last.pt'} is not a training checkpoint (it lacks "
                                   f"{', '.join(missing) or 'a config'}): it cannot be resumed, only evaluated")
        return TrainConfig.from_dict(state["config"]), state
    if not (folder / "config.json").is_file():
        raise ResnetCifarError(f"{folder} holds no run to resume (no last.pt, no config.json)")
    try:
        saved = json.loads((folder / "config.json").read_text())
        config = TrainConfig.from_dict({k: v for k, v in saved.items() if k not in ("environment", "processes")})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as error:
        raise ResnetCifarError(f"{folder / 'config.json'} is not a run's settings ({error})") from None
    notice(f"{folder} stopped before its first checkpoint: starting it again from its config.json")
    return config, None


def _start_run(folder: Path, config: TrainConfig, state: dict[str, Any] | None, stop: StopRequests, quiet: bool,
               world: World) -> Run:
    """Build the run (restored from ``state`` when resuming) and record its settings in ``config.json``."""
    run = Run(config, folder, stop, quiet, world)
    if state is not None:
        try:
            run.restore(state)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ResnetCifarError(f"{folder / 'last.pt'} does not fit the run its own saved settings describe "
                                   f"({first_line})") from None
        if not quiet:
            notice(f"resuming {folder} from {run.position()} of {config.epochs} epochs")
        if run.tally is None and run.history and world.is_main:
            run.bring_reports_up_to_date()  # a kill during the last save can leave them an epoch behind
    if world.is_main:
        atomic_write_json(folder / "config.json", {**config.to_dict(), "environment": environment(run.device),
                                                   "processes": world.world_size})
    return run


def _train_epochs(run: Run, stop_after: int | None) -> None:
    done_here = 0
    run.start_clock()
    while run.epoch < run.config.epochs and (stop_after is None or done_here < stop_after):
        try:
            row = run.run_epoch()
        except _StopRequested:
            run.checkpoint()
            raise _interrupted(run) from None
        except NonFiniteLoss as error:
            last = run.folder / "last.pt"
            saved = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was saved yet"
            raise ResnetCifarError(
                f"the loss became NaN or infinite at batch {error.batch} of epoch {run.epoch + 1} "
                f"(step {run.epoch * len(run.train_loader) + error.batch}); {saved}: lower --lr, or train with "
                f"--skip-nonfinite") from None
        run.save(row)
        done_here += 1
        if run.stop_requested(boundary=True) and run.epoch < run.config.epochs:
            raise _interrupted(run)


def _interrupted(run: Run) -> TrainingInterrupted:
    """The error that ends a run stopped by a signal, after its checkpoint is saved."""
    return TrainingInterrupted(f"stopped by {signal.Signals(run.stop_signal).name} at {run.position()}, checkpoint "
                               f"saved; continue with: resnet-cifar train --resume {run.folder}", run.stop_signal)
