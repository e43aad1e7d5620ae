"""Datasets: CIFAR-10/100 folders, the bundled CIFAR-10 sample, ImageFolder trees; the on-device batch loader."""
from __future__ import annotations

from pathlib import Path

from ..errors import ResnetCifarError
from ..log import notice
from .cifar import CIFAR, check_official_sums, cifar_folder, read_cifar
from .folder import read_image_folder
from .imageset import ImageSet, split_validation
from .sample import read_sample

DATASETS = ("cifar10", "cifar100", "cifar10-sample", "folder")
SPLITS = ("train", "test")


def load_dataset(name: str, split: str, data_dir: str | Path = "data", *, image_size: tuple[int, int] = (32, 32),
                 class_names: list[str] | None = None, download: bool = True) -> ImageSet:
    """Load ``split`` of dataset ``name``; ``image_size`` and ``class_names`` apply to ``folder`` only."""
    if split not in SPLITS:
        raise ResnetCifarError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    root = Path(data_dir)
    if name == "cifar10-sample":
        return read_sample(split)
    if name == "folder":
        return read_image_folder(root, split, image_size, class_names)
    if name in CIFAR:
        changed = check_official_sums(name, cifar_folder(name, root, download))
        if changed:
            notice(f"{', '.join(changed)} under {root} differ from the official {name} files (MD5); loading them anyway")
        return read_cifar(name, root, split, download=False)
    raise ResnetCifarError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def load_cifar(name: str = "cifar10", data_dir: str | Path = "data") -> tuple[ImageSet, ImageSet]:
    """(train, test) of ``cifar10``, ``cifar100`` or ``cifar10-sample``."""
    return load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)


__all__ = ["DATASETS", "SPLITS", "ImageSet", "load_cifar", "load_dataset", "split_validation"]
