"""Mixup and CutMix: each training batch blended with itself in reverse order, and its labels blended alike.

Mixup (Zhang et al., 2018) averages two images with a weight drawn from Beta(a, a); CutMix (Yun et al., 2019)
pastes a box of the partner image whose area is that share. As in timm's batch mode, one weight (and one box)
serves a whole batch and each image's partner is the image at the mirrored position, so a batch costs two tensor
ops. Written here rather than taken from torchvision's ``transforms.v2.MixUp``: torchvision is not a dependency,
and the draws must come from the loader's seeded stream so that a resumed run sees the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Mixing:
    """Beta(a, a) concentrations of mixup and CutMix (0 = off); with both on, each batch takes one at even odds."""

    mixup: float = 0.0
    cutmix: float = 0.0

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


NO_MIXING = Mixing()


@dataclass
class MixDraws:
    """The choices for each batch of an epoch: the weight of the batch's own images, CutMix or mixup, and the
    box centre as a fraction of the image side (each of shape (batches,))."""

    weight: np.ndarray
    cut: np.ndarray
    centre_y: np.ndarray
    centre_x: np.ndarray

    @classmethod
    def draw(cls, batches: int, mixing: Mixing, generator: torch.Generator) -> MixDraws:
        """Draw the choices of ``batches`` batches, seeded from the CPU ``generator`` (torch samples no Beta
        variates from a generator, so a numpy generator seeded from it does)."""
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        if mixing.mixup > 0 and mixing.cutmix > 0:
            cut = rng.random(batches) < 0.5
        else:
            cut = np.full(batches, mixing.cutmix > 0)
        mixup_weight = rng.beta(mixing.mixup, mixing.mixup, batches) if mixing.mixup > 0 else np.ones(batches)
        cutmix_weight = rng.beta(mixing.cutmix, mixing.cutmix, batches) if mixing.cutmix > 0 else np.ones(batches)
        return cls(np.where(cut, cutmix_weight, mixup_weight), cut, rng.random(batches), rng.random(batches))


def mix_batch(images: torch.Tensor, labels: torch.Tensor, num_classes: int, draws: MixDraws,
              index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, targets) of batch ``index``: the batch mixed with its reverse as ``draws`` chose, and the class
    probabilities (N, num_classes) that say how much of each image's label remains."""
    partner = images.flip(0)
    weight = float(draws.weight[index])
    if draws.cut[index]:
        images, weight = paste_box(images, partner, weight, float(draws.centre_y[index]),
                                   float(draws.centre_x[index]))
    else:
        images = images.lerp(partner, 1.0 - weight)
    own = F.one_hot(labels, num_classes).to(images.dtype if images.is_floating_point() else torch.float32)
    return images, own.lerp(own.flip(0), 1.0 - weight)


def paste_box(images: torch.Tensor, partner: torch.Tensor, weight: float, centre_y: float,
              centre_x: float) -> tuple[torch.Tensor, float]:
    """``images`` with a box of ``partner`` pasted in, covering about 1 - ``weight`` of the area around the centre
    (fractions of the sides), clipped at the border; returns them and the share of the image left uncovered."""
    h, w = images.shape[-2:]
    side = np.sqrt(1.0 - weight)
    box_h, box_w = int(round(h * side)), int(round(w * side))
    cy, cx = int(centre_y * h), int(centre_x * w)
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h - box_h // 2, h)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w - box_w // 2, w)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (h * w)
