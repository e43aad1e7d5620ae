"""A user's own images in the ImageFolder layout: ``DIR/<split>/<class>/*.png|jpg``."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ResnetCifarError
from .images import IMAGE_SUFFIXES, decode_image
from .imageset import ImageSet


def read_image_folder(root: Path, split: str, size: tuple[int, int], class_names: list[str] | None = None) -> ImageSet:
    """Every image under ``root/split/<class>/``, resized to ``size``; classes sorted by name unless given."""
    folder = root / split
    if not folder.is_dir():
        raise ResnetCifarError(f"{folder} is not a folder: --dataset folder expects {root}/train/<class>/*.png "
                               f"and {root}/test/<class>/*.png")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    names = class_names or found
    if len(names) < 2:
        raise ResnetCifarError(f"{folder} has {len(names)} class folder(s); a classifier needs at least 2")
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise ResnetCifarError(f"{folder} has class folders {', '.join(unknown)} that the model does not know")
    images, labels = [], []
    for label, name in enumerate(names):
        files = _image_files(folder / name)
        if not files and split == "train":  # a class never seen in training could never be predicted
            raise ResnetCifarError(f"class folder {folder / name} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
                                   f"add some, or remove the folder")
        images += [decode_image(path, size) for path in files]
        labels += [label] * len(files)
    if not images:
        raise ResnetCifarError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), list(names))


def _image_files(folder: Path) -> list[Path]:
    """The regular image files of a class folder, sorted; an unreadable folder is an error, not an empty class
    (FIFOs and devices are skipped: reading one could block forever)."""
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise ResnetCifarError(f"cannot read class folder {folder} ({error.strerror})") from None
    return sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
