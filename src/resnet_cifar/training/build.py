"""The factory of a training run: every part it trains with, built once from a ``TrainConfig``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.batches import EVAL_BATCH_SIZE
from ..core.device import resolve_amp, resolve_channels_last, resolve_device, set_determinism
from ..core.distributed import World, barrier, convert_sync_batchnorm, device_of_rank
from ..data import ImageSet, load_dataset, split_validation
from ..data.imageset import balanced_split
from ..data.loader import NO_AUGMENT, Augment, BatchLoader
from ..data.mixing import NO_MIXING, Mixing
from ..errors import ResnetCifarError
from ..log import notice
from ..models import create_model
from .config import TrainConfig
from .ema import EMA
from .finetune import initialise_from
from .optim import Scheduler, build_optimizer, build_scheduler


@dataclass(frozen=True)
class Placement:
    """Where and in which precision a run computes: resolved once from the config, before anything is built."""

    device: torch.device
    amp_dtype: torch.dtype | None  # None: float32
    channels_last: bool


def resolve_placement(config: TrainConfig, world: World) -> Placement:
    """This process's device, autocast dtype and memory format; a device that is missing is refused here."""
    device = device_of_rank(resolve_device(config.device), world)
    return Placement(device, resolve_amp(config.amp, device), resolve_channels_last(config.channels_last, device))


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


@dataclass
class RunParts:
    """What a run trains with. ``model`` holds the weights; ``network`` is what the steps call (the model, wrapped
    for several processes and compiled when asked)."""

    config: TrainConfig
    world: World
    placement: Placement
    data: Splits
    mean: list[float]
    std: list[float]
    model: nn.Module
    network: nn.Module
    train_loader: BatchLoader
    eval_loaders: dict[str, BatchLoader]
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    scaler: torch.amp.GradScaler
    ema: EMA | None
    criterion: nn.Module

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA copy when ``--ema`` is on."""
        return self.ema.module if self.ema is not None else self.model


def build_parts(config: TrainConfig, placement: Placement, world: World = World(), quiet: bool = False,
                fresh: bool = True) -> RunParts:
    """Data, model, loaders, optimizer, schedule, scaler, EMA and the wrapped network of a run, in that order (the
    model's initialisation draws from ``config.seed`` after the data is loaded). ``fresh``: a new run, whose model
    starts from ``config.init_from`` when given (a resumed one gets its weights from its checkpoint)."""
    device = placement.device
    set_determinism(config.deterministic, device)
    if world.distributed and config.skip_nonfinite:
        raise ResnetCifarError("--skip-nonfinite works in one process only: the ranks would skip different "
                               "batches and drift apart")
    data = _load_splits_in_turn(config, world)
    mean, std = data.train.channel_stats()
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=len(data.train.class_names), **config.model_options)
    if config.init_from and fresh:
        initialise_from(model, config.init_from, config.model, config.model_options)
    if not config.train_norm_scale:
        freeze_norm_scales(model)
    model = model.to(device)
    if config.sync_bn and world.distributed:
        model = convert_sync_batchnorm(model, device)
    elif config.sync_bn and not quiet:
        notice("--sync-bn has nothing to synchronise in one process: start several with torchrun")
    if placement.channels_last:
        model = model.to(memory_format=torch.channels_last)

    def loader(images: ImageSet, batch_size: int, shuffle: bool = False, augment: Augment = NO_AUGMENT,
               mixing: Mixing = NO_MIXING) -> BatchLoader:
        ranks = {"rank": world.rank, "world_size": world.world_size} if shuffle else {}
        return BatchLoader(images, batch_size, device=device, mean=mean, std=std, shuffle=shuffle, augment=augment,
                           mixing=mixing, seed=config.seed, drop_last=shuffle, channels_last=placement.channels_last,
                           **ranks)

    augment = NO_AUGMENT
    if config.augment:
        augment = Augment(config.crop_padding, True, config.cutout, alternate_flip=config.flip == "alternate",
                          reflect=config.pad_mode == "reflect")
    train_loader = loader(data.train, config.batch_size, shuffle=True, augment=augment,
                          mixing=Mixing(config.mixup, config.cutmix))
    # Each rank evaluates its own slice of the evaluation images; the sums are added up across ranks.
    eval_loaders = {split: loader(_shard(images, world), EVAL_BATCH_SIZE)
                    for split, images in (("val", data.val), ("test", data.test)) if images is not None}
    optimizer = build_optimizer(config, model)
    return RunParts(
        config, world, placement, data, mean, std, model, _network(model, config, world, device), train_loader,
        eval_loaders, optimizer, build_scheduler(config, optimizer, len(train_loader)),
        torch.amp.GradScaler(device.type, enabled=placement.amp_dtype == torch.float16),
        EMA(model, config.ema_decay) if config.ema else None,
        nn.CrossEntropyLoss(label_smoothing=config.label_smoothing))


def freeze_norm_scales(model: nn.Module) -> None:
    """Keep every BatchNorm scale at its value (1 from initialisation): the optimizer leaves them out."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
            module.weight.requires_grad_(False)


def _load_splits_in_turn(config: TrainConfig, world: World) -> Splits:
    """The data; with several processes the main one reads (and downloads) it first, then the others."""
    if not world.is_main:
        barrier()
    data = load_splits(config)
    if world.is_main:
        barrier()
    return data


def _shard(data: ImageSet, world: World) -> ImageSet:
    """This rank's contiguous slice of ``data`` (all of it in one process)."""
    n, rank, size = len(data), world.rank, world.world_size
    return data.subset(torch.arange(n * rank // size, n * (rank + 1) // size))


def _network(model: nn.Module, config: TrainConfig, world: World, device: torch.device) -> nn.Module:
    """The module the training steps call: DistributedDataParallel around the model with several processes, then
    torch.compile when asked."""
    network = model
    if world.distributed:
        # Gradients share the buckets' memory (no copy per step); with --sync-bn the BatchNorm statistics are
        # already the same on every rank, so they need no broadcast before each forward.
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=not config.sync_bn, gradient_as_bucket_view=True)
    if config.compile:
        network = torch.compile(network, mode=config.compile_mode)
    return network
