"""The in-memory form of every dataset: uint8 images (N, C, H, W), int64 labels, class names."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ResnetCifarError


@dataclass
class ImageSet:
    """A labelled set of images held as one uint8 tensor."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ResnetCifarError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                                   f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ResnetCifarError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise ResnetCifarError(f"labels must lie in 0..{len(self.class_names) - 1} for {len(self.class_names)} "
                                   f"classes, found {int(self.labels.min())}..{int(self.labels.max())}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at ``indices``, in that order."""
        return ImageSet(self.images[indices], self.labels[indices], self.class_names)

    def spread(self, count: int) -> ImageSet:
        """At most ``count`` images taken at even intervals over the set (a calibration sample of every part)."""
        return self.subset(torch.linspace(0, len(self) - 1, min(count, len(self))).round().long())

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the pixels scaled to [0, 1]."""
        pixels = self.images.transpose(0, 1).reshape(self.images.shape[1], -1).double() / 255
        return pixels.mean(1).tolist(), pixels.std(1).tolist()


def split_validation(data: ImageSet, size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``size`` images, balanced over the classes and chosen by ``seed``: returns (train, validation)."""
    return balanced_split(data, size, seed, "--val-split")


def balanced_split(data: ImageSet, size: int, seed: int, option: str) -> tuple[ImageSet, ImageSet]:
    """Split off ``size`` images balanced over the classes, chosen by ``seed``: returns (rest, chosen).

    ``option`` names the setting that asked for the split in error messages.
    """
    num_classes = len(data.class_names)
    if not 0 < size < len(data):
        raise ResnetCifarError(f"{option} must lie between 1 and {len(data) - 1} for {len(data)} training images")
    generator = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for cls in range(num_classes):
        members = torch.nonzero(data.labels == cls).flatten()
        take = size // num_classes + (1 if cls < size % num_classes else 0)
        if take > len(members) - 1:
            raise ResnetCifarError(f"{option} {size} would take every image of class {data.class_names[cls]!r}; "
                                   f"use a smaller number")
        held.append(members[torch.randperm(len(members), generator=generator)[:take]])
    chosen = torch.cat(held).sort().values
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[chosen] = False
    return data.subset(torch.nonzero(keep).flatten()), data.subset(chosen)
