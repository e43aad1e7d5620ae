"""Fault injection for the reliability tests, switched on by environment variables read once per run:

- ``RESNET_CIFAR_FAULT_KILL_AT_BATCH=N``: SIGKILL the process right after global training batch N.
- ``RESNET_CIFAR_FAULT_KILL_IN_WRITE=NAME:N``: SIGKILL half-way through the N-th atomic write of file NAME.
- ``RESNET_CIFAR_FAULT_NAN_AT_BATCH=N``: make the images of global batch N NaN, so its loss is not finite.

Without them a run has no fault callback and the file writes no hook: nothing of this runs.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch

from .. import files
from .callbacks import Callback

if TYPE_CHECKING:
    from .state import TrainState
    from .trainer import Run

_PREFIX = "RESNET_CIFAR_FAULT_"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjection(Callback):
    """The faults the environment asks for, on the run whose ``state`` is given; ``on_train_end`` removes the write
    hook."""

    def __init__(self, state: TrainState, settings: dict[str, str]) -> None:
        self.state = state
        self.kill_at_batch = int(settings["KILL_AT_BATCH"]) if "KILL_AT_BATCH" in settings else None
        self.nan_at_batch = int(settings["NAN_AT_BATCH"]) if "NAN_AT_BATCH" in settings else None
        self.kill_in_write: tuple[str, int] | None = None
        self.writes = 0
        if "KILL_IN_WRITE" in settings:
            name, count = settings["KILL_IN_WRITE"].rsplit(":", 1)
            self.kill_in_write = (name, int(count))
            files.before_rename.append(self.during_write)

    def poison(self, images: torch.Tensor, global_batch: int) -> torch.Tensor:
        """The batch's images, or NaNs in their place for the configured batch."""
        return images * float("nan") if global_batch == self.nan_at_batch else images

    def on_train_batch_end(self, run: Run) -> None:
        if self.state.global_batch == self.kill_at_batch:
            _die()

    def during_write(self, path: Path, file: BinaryIO) -> None:
        """Cut the temporary file to half its length and kill the process, on the configured write."""
        name, count = self.kill_in_write
        if path.name != name:
            return
        self.writes += 1
        if self.writes == count:
            file.flush()
            file.truncate(file.tell() // 2)
            file.flush()
            _die()

    def on_train_end(self, run: Run) -> None:
        if self.during_write in files.before_rename:
            files.before_rename.remove(self.during_write)


def faults_from_environment(state: TrainState) -> FaultInjection | None:
    """The fault callback the environment configures for a run, or ``None`` (always, outside the tests)."""
    settings = {key[len(_PREFIX):]: value for key, value in os.environ.items() if key.startswith(_PREFIX)}
    return FaultInjection(state, settings) if settings else None
