"""The run's policies, ordinary callbacks that the run puts around the user's (``Callback`` says in which order):
evaluate after each epoch, save checkpoints (per epoch, every N steps) and stop on a signal."""
from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import torch

from ..core.batches import predict_batches
from ..core.checkpoint import export_model
from ..core.distributed import DeferredMax, max_across_ranks, sum_across_ranks
from .callbacks import Callback
from .interrupt import StopRequests, TrainingInterrupted

if TYPE_CHECKING:
    from .trainer import Run

# With several processes a stop signal is acted on at the same step everywhere: the ranks compare notes
# every STOP_CHECK_EVERY steps (one small collective, not one per step).
STOP_CHECK_EVERY = 20


class Evaluate(Callback):
    """Adds each evaluated split's loss and accuracy (val, test) to the row of every finished training epoch; with
    ``--tta``, after the last epoch also the test accuracy under that test-time augmentation (``test_tta_acc``)."""

    def on_train_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        for split in run.parts.eval_loaders:
            row[f"{split}_loss"], row[f"{split}_acc"] = self.evaluate(run, split)
        if run.config.tta != "off" and run.epoch == run.config.epochs:
            row["test_tta_acc"] = self.evaluate(run, "test", run.config.tta)[1]

    @staticmethod
    def evaluate(run: Run, split: str, tta: str = "off") -> tuple[float, float]:
        """(loss, accuracy) of the evaluated weights on ``split``, in float32, over every rank."""
        parts = run.parts
        predictions = predict_batches(parts.eval_model, parts.eval_loaders[split].epoch(), tta=tta)
        count = len(predictions.labels)
        sums = torch.tensor([predictions.loss * count, predictions.correct, count], dtype=torch.float64,
                            device=parts.device)
        loss_sum, correct, count = sum_across_ranks(sums).tolist()
        return loss_sum / count, correct / count


class EpochCheckpoint(Callback):
    """After every epoch: ``last.pt``, ``best.pt`` when the validation accuracy improved, and the exported weights
    (``model.safetensors`` + ``model.json``)."""

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        state = run.state
        improved = "val_acc" in row and row["val_acc"] > state.best_val_acc
        if improved:
            state.best_val_acc = row["val_acc"]
        run.save_checkpoint("last.pt", *(["best.pt"] if improved else []))
        if run.is_main:
            export_model(run.folder, run.parts.eval_model.state_dict(), state.info())


class PeriodicCheckpoint(Callback):
    """``last.pt`` every ``every`` training steps inside an epoch (``--checkpoint-every``)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_batch_end(self, run: Run) -> None:
        state = run.state
        if state.global_batch % self.every == 0 and state.mid_epoch:
            state.tally.raise_if_nonfinite()  # never save weights that a NaN step has touched
            run.save_checkpoint("last.pt")


class StopOnSignal(Callback):
    """Ctrl-C/SIGTERM: stop after the current step with a checkpoint, or at an epoch end once it is saved.

    With several processes they compare notes every ``STOP_CHECK_EVERY`` steps without waiting (each acts on the
    previous comparison, so all stop at the same step), and at epoch ends waiting for the answer.
    """

    def __init__(self, stop: StopRequests, device: torch.device) -> None:
        self.stop = stop
        self.votes = DeferredMax(device)
        self.signal: int | None = None  # the signal every rank agreed to stop for

    def on_train_batch_end(self, run: Run) -> None:
        state, world = run.state, run.world
        if not world.distributed:
            self.signal = self.stop.signal
        elif state.global_batch % STOP_CHECK_EVERY == 0:
            self.signal = self.votes.exchange(self.stop.signal or 0) or None
        if self.signal is not None:
            state.tally.raise_if_nonfinite()
            run.save_checkpoint("last.pt")
            raise self._interrupted(run)

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        """Called after the epoch's checkpoint is saved: only stops a run that has epochs left. With several
        processes the same vote settles ``run.should_stop``: set by a callback in any process, it is set in all."""
        if run.world.distributed:
            self.votes.finish()
            local = torch.tensor([self.stop.signal or 0, int(run.should_stop)], device=run.parts.device)
            agreed = max_across_ranks(local).tolist()
            self.signal, run.should_stop = agreed[0] or None, bool(agreed[1])
        else:
            self.signal = self.stop.signal
        if self.signal is not None and run.state.epoch < run.config.epochs:
            raise self._interrupted(run)

    def _interrupted(self, run: Run) -> TrainingInterrupted:
        return TrainingInterrupted(f"stopped by {signal.Signals(self.signal).name} at {run.state.position()}, "
                                   f"checkpoint saved; continue with: resnet-cifar train --resume {run.folder}",
                                   self.signal)
