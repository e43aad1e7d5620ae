"""The seed posts' input pipeline, for the baselines: torchvision ``CIFAR10`` + PIL transforms + ``DataLoader``.

Random crop with padding 4, horizontal flip, ``ToTensor``, ``Normalize`` with the usual CIFAR-10 statistics.
Needs torchvision, so it runs only in a benchmark environment (BENCHMARKS.md), never in the package.
"""
from __future__ import annotations

import os.path

import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _accept_unofficial_sums() -> None:
    """torchvision checks the official MD5 sums; the JPEG-derived copy has its own, so only check files exist."""
    torchvision.datasets.cifar.check_integrity = lambda path, md5=None: os.path.isfile(path)


def seeds_loader(data_dir: str, *, train: bool, batch_size: int, workers: int) -> DataLoader:
    """A ``DataLoader`` over CIFAR-10 in ``data_dir`` (holding cifar-10-batches-py/), augmented when ``train``."""
    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    pipeline = transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    _accept_unofficial_sums()
    dataset = torchvision.datasets.CIFAR10(data_dir, train=train, transform=pipeline)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, num_workers=workers)
