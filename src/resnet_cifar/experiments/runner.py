"""Train a list of configurations into sub-folders of one experiment folder, resuming whatever is unfinished."""
from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import sys
from pathlib import Path
from typing import Any

import torch

from ..core.checkpoint import load_checkpoint
from ..core.device import resolve_device
from ..core.distributed import device_of_rank, process_group, world_from_environment
from ..core.termination import terminate_as_interrupt
from ..errors import ResnetCifarError
from ..flops import model_flops
from ..log import notice
from ..models.summary import count_parameters_of
from ..training.config import PLACE_SETTINGS, TrainConfig
from ..training.interrupt import TrainingInterrupted
from ..training.trainer import train
from .report import show


@dataclasses.dataclass
class Finished:
    """One finished run of an experiment: its settings, per-epoch metrics, folder and number of classes."""

    name: str
    config: TrainConfig
    history: list[dict[str, Any]]
    folder: Path
    num_classes: int = 10
    steps_per_epoch: int | None = None  # None for checkpoints written before it was recorded

    @property
    def final(self) -> dict[str, Any]:
        """The metrics row of the last epoch."""
        return self.history[-1]

    @property
    def train_seconds(self) -> float:
        return float(self.final["elapsed_seconds"])

    def model_cost(self) -> tuple[int, int]:
        """(parameters, multiply-accumulates per image) of the model this run trained, with its classes, options
        and input size; counted on the meta device (convolutions and linear layers)."""
        model = {"num_classes": self.num_classes, **self.config.model_options}
        macs = model_flops(self.config.model, training=False, image_size=self.config.image_size, **model) / 2
        return count_parameters_of(self.config.model, **model), round(macs)


def run_all(configs: dict[str, TrainConfig], out: Path, *, quiet: bool = False, jobs: int = 1) -> list[Finished]:
    """Train each ``configs[name]`` in ``out/name`` (skipping finished runs, resuming stopped ones), in order, or
    ``jobs`` at a time in processes of their own (small nets leave a GPU idle one at a time).

    A run folder that holds a run with other settings is an error, so an experiment never mixes results. Under
    torchrun the processes join one process group for the whole experiment (joining a new one per run hangs), and
    only rank 0 prints.
    """
    if jobs < 1:
        raise ResnetCifarError(f"--jobs must be at least 1, got {jobs}")
    folders = {name: out / name for name in configs}
    configs = {name: dataclasses.replace(config, out=str(folders[name])) for name, config in configs.items()}
    if jobs > 1:
        return _run_in_parallel(configs, folders, jobs, quiet)
    finished = []
    world = world_from_environment()
    device = device_of_rank(resolve_device(next(iter(configs.values())).device), world)
    with process_group(world, device):
        for number, (name, config) in enumerate(configs.items(), 1):
            show(f"[{number}/{len(configs)}] {name}: {config.model}, {config.epochs} epochs -> {folders[name]}", quiet)
            finished.append(_finished(name, config, _train_or_continue(config, folders[name], quiet)))
    return finished


def _finished(name: str, config: TrainConfig, state: dict[str, Any]) -> Finished:
    return Finished(name, config, state["history"], Path(config.out), state["model_info"]["num_classes"],
                    state.get("batches_per_epoch"))


def _run_in_parallel(configs: dict[str, TrainConfig], folders: dict[str, Path], jobs: int,
                     quiet: bool) -> list[Finished]:
    """``jobs`` runs at a time, each in a process of its own with an equal share of the CPU threads. SIGTERM or
    Ctrl-C stops every running one with a checkpoint (they resume when the experiment is run again)."""
    if world_from_environment().distributed:
        raise ResnetCifarError("--jobs trains several runs at once in one process each: not under torchrun")
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # CUDA cannot be shared with a forked child
    waiting = [name for name in configs if _finished_state(configs[name], folders[name]) is None]
    running: dict[str, Any] = {}
    failed: list[str] = []
    with terminate_as_interrupt():
        try:
            while waiting or running:
                while waiting and len(running) < jobs:
                    name = waiting.pop(0)
                    show(f"{name}: {configs[name].model}, "
                         f"{configs[name].epochs} epochs -> {folders[name]} (in a process of its own)", quiet)
                    process = context.Process(target=_train_in_child, name=name,
                                              args=(configs[name].to_dict(), threads))
                    process.start()
                    running[name] = process
                multiprocessing.connection.wait([p.sentinel for p in running.values()], timeout=5)
                for name, process in list(running.items()):
                    if process.exitcode is not None:
                        del running[name]
                        if process.exitcode:
                            failed.append(name)
        except KeyboardInterrupt:
            for process in running.values():
                process.terminate()  # SIGTERM: each run saves a checkpoint after its current step
            for process in running.values():
                process.join()
            raise
    if failed:
        raise ResnetCifarError(f"{len(failed)} of {len(configs)} runs failed ({', '.join(failed)}; their messages "
                               f"are above): the others are saved, run the experiment again once fixed")
    return [_finished(name, config, load_checkpoint(folders[name] / "last.pt")) for name, config in configs.items()]


def _train_in_child(config: dict[str, Any], threads: int) -> None:
    """One run of ``_run_in_parallel``: quiet, its error as one line, exit code 2 (interrupted: 128 + signal).

    In a process group of its own, so that a signal to the experiment's group reaches the parent only, which passes
    on one SIGTERM (a second one would stop the run without a checkpoint)."""
    os.setpgrp()
    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(config)
    try:
        _train_or_continue(config, Path(config.out), quiet=True)
    except ResnetCifarError as error:
        print(f"resnet-cifar: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


def _train_or_continue(config: TrainConfig, folder: Path, quiet: bool) -> dict[str, Any]:
    """The final checkpoint of the run in ``folder``: trained now, continued, or as it was when finished."""
    state = _finished_state(config, folder)
    if state is not None:
        return state
    try:
        if (folder / "last.pt").is_file():
            train(resume=folder, quiet=quiet, device=config.device, data_dir=config.data_dir)
        else:
            train(config, quiet=quiet)
    except TrainingInterrupted as error:  # the experiment, not the run alone, is what the user continues
        raise TrainingInterrupted(f"the experiment stopped during {folder.name}, saved in {folder}: run the same "
                                  f"command to continue it", error.exit_code - 128) from None
    return load_checkpoint(folder / "last.pt")


def _finished_state(config: TrainConfig, folder: Path) -> dict[str, Any] | None:
    """The checkpoint of the finished run in ``folder``; None where the run has not started or not finished. A run
    with other settings there is an error."""
    last = folder / "last.pt"
    if not last.is_file():
        return None
    state = load_checkpoint(last)
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    differing = sorted(key for key, value in config.to_dict().items()
                       if key not in PLACE_SETTINGS and saved.get(key) != value)
    if differing:
        raise ResnetCifarError(f"{folder} holds a run with other settings ({', '.join(differing)}): give another "
                               f"--out, or remove that folder")
    if state["epoch"] < config.epochs:
        return None
    notice(f"{folder} is finished already ({config.epochs} epochs): reusing its results")
    return state
