"""The hooks the training loop calls (``Callback``, the base class of users' callbacks too), and what a run
reports, each in its own callback: console, metrics.csv, TensorBoard, curves.png. The run's policies (evaluate,
checkpoint, stop) are in ``policies``."""
from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..files import atomic_write_bytes
from ..plots import plot_curves

if TYPE_CHECKING:
    from .trainer import Run

# test_tta_acc: with --tta, the last epoch's test accuracy under that test-time augmentation (empty before).
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "test_tta_acc",
                  "lr", "skipped_batches", "epoch_seconds", "elapsed_seconds", "wall_seconds")


class Callback:
    """Hooks the training loop calls; subclass it, override the hooks you need and pass instances to
    ``train(config, callbacks=[...])``. Each hook gets the ``run`` (``training.trainer.Run``): ``run.config``,
    ``run.folder``, ``run.model`` (the network being trained), ``run.optimizer``, ``run.epoch`` (epochs finished),
    ``run.history`` (a metrics row per finished epoch), ``run.is_main`` (false in the other processes of a
    distributed run) and ``run.should_stop`` (set it to end training after the current epoch, saved and
    resumable).

    The run calls its callbacks in this order: ``Evaluate`` (adds val/test metrics to the row), ``EpochCheckpoint``
    (``last.pt``, ``best.pt``, ``model.safetensors``), ``ConsoleLog``, ``CsvLog``, ``CurvesPlot``, ``TensorBoardLog``
    (main process only), ``PeriodicCheckpoint`` (``--checkpoint-every``), then the user's, then ``StopOnSignal``
    (so that a signal stops a run only once everything else is saved). A hook may raise to stop the run.
    """

    def on_train_start(self, run: Run) -> None:
        """Before the first step of this process (a resumed run starts again here)."""

    def on_train_batch_end(self, run: Run) -> None:
        """After each optimizer step (and the schedule's and EMA's update that follow it)."""

    def on_train_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        """After an epoch's last training step: add metrics to its row (``METRIC_COLUMNS``)."""

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        """With the finished epoch's complete row, already appended to ``run.history``."""

    def on_train_end(self, run: Run) -> None:
        """When training ends, stops or fails in this process."""


class ConsoleLog(Callback):
    """A progress bar per epoch and one line per finished epoch; silent when ``quiet``."""

    def __init__(self, epochs: int, quiet: bool) -> None:
        self.epochs, self.quiet = epochs, quiet
        self.bar: tqdm | None = None

    def start_epoch(self, epoch: int, batches: int, done: int = 0) -> None:
        if not self.quiet:
            self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}/{self.epochs}", unit="batch",
                            leave=False, dynamic_ncols=True)

    def progress(self, done: int, loss: float, accuracy: float, images_per_s: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.3f} acc {100 * accuracy:.1f}% lr {lr:.4g} {images_per_s:.0f} img/s",
                                     refresh=False)
            self.bar.update(done - self.bar.n)

    def on_epoch_end(self, run: Run, row: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            print(format_epoch_line(row, self.epochs), flush=True)

    def on_train_end(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()


def format_epoch_line(row: dict, epochs: int) -> str:
    """``epoch 3/30  train loss 1.234 acc 55.2%  test loss ... lr 0.15  12.3s``."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for split in ("train", "val", "test"):
        if row.get(f"{split}_loss") not in (None, ""):
            parts.append(f"{split} loss {row[f'{split}_loss']:.4f} acc {100 * row[f'{split}_acc']:.2f}%")
    if row.get("test_tta_acc") not in (None, ""):
        parts.append(f"with TTA {100 * row['test_tta_acc']:.2f}%")
    parts.append(f"lr {row['lr']:.4g}")
    if row.get("skipped_batches"):
        parts.append(f"skipped {row['skipped_batches']} non-finite batches")
    parts.append(f"{row['epoch_seconds']:.1f}s")
    return "  ".join(parts)


class CsvLog(Callback):
    """``metrics.csv``, rewritten whole and atomically each epoch, so a resumed run never repeats a row."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, run: Run, row: dict) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in METRIC_COLUMNS} for r in run.history)
        atomic_write_bytes(self.path, text.getvalue().encode())


def read_metrics_csv(folder: Path) -> list[dict[str, str]]:
    """The rows of a run folder's ``metrics.csv`` as written (strings; empty where a column has no value), or none
    when it has none yet."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class CurvesPlot(Callback):
    """``curves.png``: loss, accuracy and learning rate against epoch.

    Drawing takes 0.3-0.5 s (matplotlib), as long as a whole ResNet-18 epoch on an H100, so it is redrawn at most
    every ``min_interval_s`` seconds, and always when the run ends or stops (``on_train_end``).
    """

    def __init__(self, path: Path, min_interval_s: float = 30.0) -> None:
        self.path, self.min_interval_s = path, min_interval_s
        self.drawn_at = -math.inf
        self.undrawn: list[dict] | None = None

    def on_epoch_end(self, run: Run, row: dict) -> None:
        self.undrawn = list(run.history)
        if time.monotonic() - self.drawn_at >= self.min_interval_s:
            self._draw()

    def _draw(self) -> None:
        plot_curves(self.undrawn, self.path)
        self.undrawn, self.drawn_at = None, time.monotonic()

    def on_train_end(self, run: Run) -> None:
        if self.undrawn:
            self._draw()


class TensorBoardLog(Callback):
    """TensorBoard event files in the run folder, created with the first finished epoch (a run that fails before
    it leaves no file behind)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writer = None

    def on_epoch_end(self, run: Run, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.folder))
        for key in METRIC_COLUMNS[1:]:
            if row.get(key) is not None:
                self.writer.add_scalar(key.replace("_", "/", 1), row[key], row["epoch"])
        self.writer.flush()

    def on_train_end(self, run: Run) -> None:
        if self.writer is not None:
            self.writer.close()


def tensorboard_available() -> bool:
    """Whether the optional ``tensorboard`` package imports here (any failure, not only its absence, means no: an
    optional extra never stops a run)."""
    try:
        import tensorboard  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True
