"""``train(config)``: build a run, train it epoch by epoch, keep the results in the run folder; resume one."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..core.checkpoint import export_model, load_checkpoint, save_checkpoint
from ..core.distributed import World, max_across_ranks, process_group, world_from_environment
from ..core.threads import follow_saved_threads
from ..errors import ResnetCifarError, first_line, require_positive_int
from ..files import atomic_write_json
from ..log import notice
from .build import Placement, build_parts, resolve_placement
from .callbacks import Callback, ConsoleLog, CsvLog, CurvesPlot, TensorBoardLog, tensorboard_available
from .config import PLACE_SETTINGS, TrainConfig
from .faults import faults_from_environment
from .interrupt import StopRequests
from .loop import EpochTally, NonFiniteLoss, train_epoch
from .policies import EpochCheckpoint, Evaluate, PeriodicCheckpoint, StopOnSignal
from .runfolder import RunLock, default_run_folder, environment, holds_run, prepare_new_run
from .state import RESUME_KEYS, TrainState


class Run:
    """A training run in three parts: what it trains with (``parts``, built by ``training.build``), where it stands
    (``state``, what its checkpoint holds) and the ``callbacks`` the loop calls at the end of each step and epoch,
    each with the run as its argument (``training.policies``: evaluate, checkpoint, stop; ``training.callbacks``:
    reports; then the user's, in the order ``Callback`` documents)."""

    def __init__(self, config: TrainConfig, folder: Path, stop: StopRequests, quiet: bool = False,
                 world: World = World(), placement: Placement | None = None, fresh: bool = True,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.folder, self.world = folder, world
        self.parts = build_parts(config, placement or resolve_placement(config, world), world, quiet, fresh)
        self.state = TrainState(self.parts)
        self.should_stop = False
        self.start_clock()
        self.console = ConsoleLog(config.epochs, quiet or not world.is_main)
        self.faults = faults_from_environment(self.state)
        reports: list[Callback] = [self.console]
        if world.is_main:
            reports += [CsvLog(folder / "metrics.csv"), CurvesPlot(folder / "curves.png")]
            if tensorboard_available():
                reports.append(TensorBoardLog(folder))
        self.callbacks: list[Callback] = [Evaluate(), EpochCheckpoint(), *reports]
        if config.checkpoint_every:
            self.callbacks.append(PeriodicCheckpoint(config.checkpoint_every))
        self.callbacks += callbacks
        # last: an epoch end stops only once everything is saved
        self.callbacks.append(StopOnSignal(stop, self.parts.device))
        if self.faults is not None:
            self.callbacks.append(self.faults)

    @property
    def model(self) -> torch.nn.Module:
        """The network being trained (without a DistributedDataParallel or compile wrapper)."""
        return self.parts.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.parts.optimizer

    @property
    def epoch(self) -> int:
        """Epochs finished."""
        return self.state.epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        """One metrics row (``METRIC_COLUMNS``) per finished epoch."""
        return self.state.history

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files and reports (rank 0, or the only process)."""
        return self.world.is_main

    @property
    def config(self) -> TrainConfig:
        return self.parts.config

    @property
    def lr(self) -> float:
        return self.parts.optimizer.param_groups[0]["lr"]

    def after_step(self) -> None:
        """Everything that follows an optimizer step: the schedule, the weights' average, then the callbacks."""
        if not isinstance(self.parts.scheduler, ReduceLROnPlateau):
            self.parts.scheduler.step()
        if self.parts.ema is not None:
            self.parts.ema.update(self.parts.model)
        for callback in self.callbacks:
            callback.on_train_batch_end(self)

    def run_epoch(self) -> dict[str, Any]:
        """Train the next epoch (or the rest of a stopped one), let the callbacks evaluate, save and report it, and
        return its metrics row."""
        parts, state = self.parts, self.state
        start = time.perf_counter()
        if state.tally is None:
            state.tally = EpochTally()
        self.console.start_epoch(state.epoch + 1, state.batches_per_epoch, state.tally.batches)
        tally = train_epoch(parts.network, self._batches(state.tally.batches), parts.optimizer,
                            criterion=parts.criterion, scaler=parts.scaler, amp_dtype=parts.placement.amp_dtype,
                            tally=state.tally, after_step=self.after_step, skip_nonfinite=self.config.skip_nonfinite,
                            progress=self._progress if self.world.is_main else None).reduced()
        state.epoch += 1
        state.tally = None
        row: dict[str, Any] = {"epoch": state.epoch, "train_loss": tally.loss, "train_acc": tally.accuracy}
        for callback in self.callbacks:
            callback.on_train_epoch_end(self, row)
        if isinstance(parts.scheduler, ReduceLROnPlateau):
            # Never steer on the test set: the plateau watches the validation loss, or the training loss.
            parts.scheduler.step(row.get("val_loss", tally.loss))
        row["lr"], row["skipped_batches"] = self.lr, tally.skipped
        now = time.perf_counter()
        row["epoch_seconds"] = now - start
        row["elapsed_seconds"] = row["epoch_seconds"] + (state.history[-1]["elapsed_seconds"] if state.history else 0.0)
        row["wall_seconds"] = self.wall_before + now - self.clock_start
        state.history.append(row)
        for callback in self.callbacks:
            callback.on_epoch_end(self, row)
        return row

    def save_checkpoint(self, *names: str) -> None:
        """Save the state as each of ``names`` in the run folder (every rank takes part in gathering it; the main
        one writes). Weights or statistics that are no longer finite are refused, so no file of a run holds them."""
        self.require_finite_weights()
        state = self.state.state_dict()
        if self.world.is_main:
            for name in names:
                save_checkpoint(self.folder / name, state)

    def require_finite_weights(self) -> None:
        """Raise ``ResnetCifarError`` if a weight or BatchNorm statistic is NaN or infinite (the run diverged)."""
        broken = torch.tensor(0 if self.state.weights_are_finite() else 1, device=self.parts.device)
        if not int(max_across_ranks(broken)):  # every rank decides alike, so none waits in a collective alone
            return
        raise ResnetCifarError(f"the run diverged: weights or BatchNorm statistics became NaN or infinite by "
                               f"{self.state.position()}; nothing was saved, {self.last_good_checkpoint()}: lower --lr")

    def last_good_checkpoint(self) -> str:
        """Where the last good checkpoint is, in words."""
        last = self.folder / "last.pt"
        return f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was saved yet"

    def _batches(self, start: int):
        first = self.state.epoch * self.state.batches_per_epoch + start
        for index, (images, labels) in enumerate(self.parts.train_loader.epoch(self.state.epoch + 1, start), first + 1):
            yield (self.faults.poison(images, index) if self.faults else images), labels

    def _progress(self, done: int, loss: float, accuracy: float, images_per_s: float) -> None:
        self.console.progress(done, loss, accuracy, images_per_s, lr=self.lr)

    def start_clock(self) -> None:
        """(Re)start the wall clock of this process; earlier processes of a resumed run add what they recorded.

        ``epoch_seconds``/``elapsed_seconds`` count training and evaluation only; ``wall_seconds`` is the wall
        clock since training began when the row is made, so it also counts every earlier epoch's checkpoint,
        exported weights, CSV, curves and TensorBoard writes (all but this epoch's own, which follow the row).
        """
        self.clock_start = time.perf_counter()
        last = self.state.history[-1] if self.state.history else {}
        self.wall_before = last.get("wall_seconds", last.get("elapsed_seconds", 0.0))

    def bring_reports_up_to_date(self) -> None:
        """Exported weights, metrics.csv and curves.png as of the last finished epoch, from the restored state; a
        temperature fitted to these same weights (``model.json`` of this epoch) is kept."""
        info = self.state.info()
        export_model(self.folder, self.parts.eval_model.state_dict(), {**info, **self._calibration_of(info)})
        for callback in self.callbacks:
            if isinstance(callback, (CsvLog, CurvesPlot)):
                callback.on_epoch_end(self, self.state.history[-1])

    def _calibration_of(self, info: dict[str, Any]) -> dict[str, Any]:
        """The temperature and its report in the folder's ``model.json`` when it describes the epoch of ``info``."""
        try:
            exported = json.loads((self.folder / "model.json").read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(exported, dict) or exported.get("epochs_trained") != info["epochs_trained"]:
            return {}
        return {key: exported[key] for key in ("temperature", "calibration") if key in exported}

    def start(self) -> None:
        for callback in self.callbacks:
            callback.on_train_start(self)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.on_train_end(self)


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          stop_after: int | None = None, overwrite: bool = False, device: str | None = None,
          data_dir: str | None = None, callbacks: Sequence[Callback] = ()) -> Path:
    """Train per ``config`` (or continue the run folder ``resume`` with its saved config); returns the run folder.

    ``callbacks``: ``Callback`` instances whose hooks run after the built-in ones (evaluation, checkpoints,
    reports); one that sets ``run.should_stop`` ends training after that epoch, resumable with ``resume``.

    ``stop_after`` ends this call after that many epochs, leaving the run resumable with the same schedule;
    ``overwrite`` replaces a run already in ``config.out``; ``device`` and ``data_dir`` continue a resumed run on
    another device or with its dataset found elsewhere (neither changes what is computed).
    A resumed run uses the CPU thread count it was saved with, unless the user chose one (``core.threads``).
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
    placement = resolve_placement(config, world)  # refuses a missing device before touching disk
    quiet = quiet or not world.is_main
    created = not folder.exists()
    lock = RunLock(folder) if world.is_main else contextlib.nullcontext()
    with process_group(world, placement.device), lock, StopRequests() as stop:
        aside = prepare_new_run(folder, overwrite) if state is None and world.is_main else None
        try:
            run = _start_run(folder, config, state, stop, quiet, world, placement, callbacks)
            try:
                run.start()
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
    if run.state.epoch < run.config.epochs and not quiet:
        print(f"stopped after epoch {run.state.epoch} of {run.config.epochs}; continue with: "
              f"resnet-cifar train --resume {folder}")
    return folder


def _resume_point(folder: Path) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The settings and checkpoint to continue ``folder`` from; a run that stopped before its first checkpoint
    starts again from its ``config.json``. A ``last.pt`` of another run than the folder's ``config.json``
    describes is refused before anything is written, so the folder's results are never replaced by it."""
    if (folder / "last.pt").is_file():
        state = load_checkpoint(folder / "last.pt")
        missing = sorted(RESUME_KEYS - set(state))
        if missing or not isinstance(state["config"], dict):
            raise ResnetCifarError(f"{folder / 'last.pt'} is not a training checkpoint (it lacks "
                                   f"{', '.join(missing) or 'a config'}): it cannot be resumed, only evaluated")
        config = TrainConfig.from_dict(state["config"])
        try:
            saved = _folder_config(folder)
        except ResnetCifarError:
            saved = None  # a damaged config.json is rewritten from the checkpoint
        if saved is not None:
            _refuse_foreign_checkpoint(folder, config, saved)
        return config, state
    saved = _folder_config(folder)
    if saved is None:
        raise ResnetCifarError(f"{folder} holds no run to resume (no last.pt, no config.json)")
    notice(f"{folder} stopped before its first checkpoint: starting it again from its config.json")
    return saved, None


def _folder_config(folder: Path) -> TrainConfig | None:
    """The settings in ``folder/config.json``, or None where there is none."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        return TrainConfig.from_dict({k: v for k, v in saved.items() if k not in ("environment", "processes")})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as error:
        raise ResnetCifarError(f"{path} is not a run's settings ({error})") from None


def _refuse_foreign_checkpoint(folder: Path, checkpoint: TrainConfig, saved: TrainConfig) -> None:
    """Refuse a ``last.pt`` whose settings (where and on what it runs aside) differ from ``config.json``'s."""
    ours, theirs = checkpoint.to_dict(), saved.to_dict()
    differing = sorted(key for key in ours if key not in PLACE_SETTINGS and ours[key] != theirs.get(key))
    if differing:
        shown = ", ".join(f"{key} {ours[key]!r} against {theirs.get(key)!r}" for key in differing[:3])
        more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
        raise ResnetCifarError(f"{folder / 'last.pt'} is another run's checkpoint than {folder / 'config.json'} "
                               f"describes ({shown}{more}): nothing was changed; put the checkpoint back, or "
                               f"resume it from a folder of its own")


def _start_run(folder: Path, config: TrainConfig, state: dict[str, Any] | None, stop: StopRequests, quiet: bool,
               world: World, placement: Placement, callbacks: Sequence[Callback]) -> Run:
    """Build the run (restored from ``state`` when resuming) and record its settings in ``config.json``."""
    run = Run(config, folder, stop, quiet, world, placement, fresh=state is None, callbacks=callbacks)
    if state is not None:
        try:
            run.state.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
            raise ResnetCifarError(f"{folder / 'last.pt'} does not fit the run its own saved settings describe "
                                   f"({first_line(error)})") from None
        if not quiet:
            notice(f"resuming {folder} from {run.state.position()} of {config.epochs} epochs")
        if run.state.tally is None and run.state.history and world.is_main:
            run.bring_reports_up_to_date()  # a kill during the last save can leave them an epoch behind
    if world.is_main:
        atomic_write_json(folder / "config.json", {**config.to_dict(), "environment": environment(placement.device),
                                                   "processes": world.world_size})
    return run


def _train_epochs(run: Run, stop_after: int | None) -> None:
    done_here = 0
    run.start_clock()
    while run.state.epoch < run.config.epochs and (stop_after is None or done_here < stop_after):
        try:
            run.run_epoch()
        except NonFiniteLoss as error:
            raise ResnetCifarError(
                f"the loss became NaN or infinite at batch {error.batch} of epoch {run.state.epoch + 1} "
                f"(step {run.state.epoch * run.state.batches_per_epoch + error.batch}); "
                f"{run.last_good_checkpoint()}: lower --lr, or train with --skip-nonfinite") from None
        done_here += 1
        if run.should_stop:  # agreed by every process (StopOnSignal's vote at the epoch's end)
            break
