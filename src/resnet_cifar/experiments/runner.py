"""Train a list of configurations into sub-folders of one experiment folder, resuming whatever is unfinished."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..core.checkpoint import load_checkpoint
from ..core.device import resolve_device
from ..core.distributed import device_of_rank, process_group, world_from_environment
from ..errors import ResnetCifarError
from ..flops import model_flops
from ..log import notice
from ..models.summary import count_parameters_of
from ..training.config import PLACE_SETTINGS, TrainConfig
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


def run_all(configs: dict[str, TrainConfig], out: Path, *, quiet: bool = False) -> list[Finished]:
    """Train each ``configs[name]`` in ``out/name`` (skipping finished runs, resuming stopped ones), in order.

    A run folder that holds a run with other settings is an error, so an experiment never mixes results. Under
    torchrun the processes join one process group for the whole experiment (joining a new one per run hangs), and
    only rank 0 prints.
    """
    finished = []
    world = world_from_environment()
    device = device_of_rank(resolve_device(next(iter(configs.values())).device), world)
    with process_group(world, device):
        for number, (name, config) in enumerate(configs.items(), 1):
            folder = out / name
            config = dataclasses.replace(config, out=str(folder))
            show(f"[{number}/{len(configs)}] {name}: {config.model}, {config.epochs} epochs -> {folder}", quiet)
            state = _train_or_continue(config, folder, quiet)
            finished.append(Finished(name, config, state["history"], folder, state["model_info"]["num_classes"]))
    return finished


def _train_or_continue(config: TrainConfig, folder: Path, quiet: bool) -> dict[str, Any]:
    """The final checkpoint of the run in ``folder``: trained now, continued, or as it was when finished."""
    last = folder / "last.pt"
    if not last.is_file():
        train(config, quiet=quiet)
        return load_checkpoint(last)
    state = load_checkpoint(last)
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    differing = sorted(key for key, value in config.to_dict().items()
                       if key not in PLACE_SETTINGS and saved.get(key) != value)
    if differing:
        raise ResnetCifarError(f"{folder} holds a run with other settings ({', '.join(differing)}): give another "
                               f"--out, or remove that folder")
    if state["epoch"] >= config.epochs:
        notice(f"{folder} is finished already ({config.epochs} epochs): reusing its results")
        return state
    train(resume=folder, quiet=quiet, device=config.device, data_dir=config.data_dir)
    return load_checkpoint(last)
