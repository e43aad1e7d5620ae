"""Batches made on the training device from one resident uint8 tensor: crop, flip, cutout, normalise.

The whole dataset is moved to the device once; every batch is a gather plus a few tensor ops there, with no
per-image Python and no host round trip (the airbench approach). The order and the augmentation of epoch
``e`` depend only on ``(seed, e)``, so a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from .imageset import ImageSet


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop from a zero-padded image, horizontal flip, cutout square (0 = off)."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0


NO_AUGMENT = Augment(crop_padding=0, flip=False, cutout=0)


class BatchLoader:
    """Iterate over ``data`` in batches of normalised float images and int64 labels on ``device``."""

    def __init__(self, data: ImageSet, batch_size: int, *, device: torch.device, mean: Sequence[float],
                 std: Sequence[float], shuffle: bool = False, augment: Augment = NO_AUGMENT, seed: int = 0,
                 drop_last: bool = False, channels_last: bool = False) -> None:
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.shuffle, self.augment, self.seed, self.drop_last = shuffle, augment, seed, drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # One fused multiply-add from uint8 to normalised floats: (x / 255 - mean) / std = x * gain + offset.
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self._gain = 1.0 / (255.0 * std_t)
        self._offset = -torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) / std_t

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def generator(self, epoch: int) -> torch.Generator:
        """The random stream of ``epoch``: a pure function of the seed and the epoch."""
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + epoch)

    def epoch(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``, skipping the first ``start_batch`` of them (for a mid-epoch resume)."""
        generator = self.generator(epoch)
        n = len(self.labels)
        order = (torch.randperm(n, generator=generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for index in range(len(self)):
            batch = order[index * self.batch_size:(index + 1) * self.batch_size]
            images = self.images[batch]
            # Draw the augmentation of every batch, skipped or not, so the stream stays aligned on resume.
            images = augment_batch(images, self.augment, generator)
            if index >= start_batch:
                yield self.normalise(images), self.labels[batch]

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) on the device to normalised float32 in the loader's memory format."""
        out = torch.addcmul(self._offset, images.float(), self._gain)
        return out.contiguous(memory_format=self.memory_format)


def augment_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop (zero padding), horizontal flip and cutout of a uint8 batch."""
    if augment.crop_padding or augment.flip:
        images = crop_and_flip(images, augment.crop_padding, augment.flip, generator)
    if augment.cutout:
        images = cutout(images, augment.cutout, generator)
    return images


def crop_and_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Crop each image at its own offset in a copy zero-padded by ``padding``, mirrored with probability 1/2.

    One gather does both: each output pixel reads its source pixel of the padded image directly (2-3x faster
    on the CPU than a crop followed by a flip).
    """
    n, c, h, w = images.shape
    device = images.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    column = torch.arange(w, device=device).view(1, 1, w)
    if flip:
        mirrored = torch.rand(n, 1, 1, generator=generator, device=device) < 0.5
        column = torch.where(mirrored, w - 1 - column, column)
    rows = dy + torch.arange(h, device=device).view(1, h, 1)
    source = (rows * (w + 2 * padding) + dx + column).view(n, 1, h * w).expand(n, c, h * w)
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    return padded.reshape(n, c, -1).gather(2, source).view(n, c, h, w)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Black out a ``size`` x ``size`` square (clipped at the border) at a random centre of each image."""
    n, _, h, w = images.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=generator, device=images.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator, device=images.device)
    top, left = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=images.device).view(1, h, 1)
    xs = torch.arange(w, device=images.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return images.masked_fill(inside.unsqueeze(1), 0)
