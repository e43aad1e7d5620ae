"""One evaluation pass: class probabilities of a model over batches, as training's evaluation, ``eval``, ``predict``
and ``serve`` all compute them."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

# Evaluation batch size, fixed so that training-time and ``eval`` figures come from identical batches.
EVAL_BATCH_SIZE = 500


@dataclass(frozen=True)
class Predictions:
    """Outputs of a model over a dataset, kept on the CPU for reports: its logits (and with test-time augmentation
    those of the mirrored images), the labels, and the temperature the probabilities are computed at."""

    logits: torch.Tensor  # float32 (N, num_classes)
    labels: torch.Tensor  # int64 (N,)
    mirrored_logits: torch.Tensor | None = None  # flip TTA: probabilities averaged with these
    temperature: float = 1.0  # logits are divided by it (temperature scaling; 1: as the model answers)

    @functools.cached_property
    def probabilities(self) -> torch.Tensor:
        """float32 (N, num_classes): softmax of the logits over the temperature, averaged over the TTA views."""
        probabilities = F.softmax(self.logits / self.temperature, dim=1)
        if self.mirrored_logits is not None:
            probabilities = (probabilities + F.softmax(self.mirrored_logits / self.temperature, dim=1)) / 2
        return probabilities

    def at_temperature(self, temperature: float) -> Predictions:
        """The same outputs with their probabilities at ``temperature``."""
        return dataclasses.replace(self, temperature=temperature)

    @property
    def predicted(self) -> torch.Tensor:
        return self.probabilities.argmax(1)

    @property
    def correct(self) -> int:
        return int((self.predicted == self.labels).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.labels)

    @property
    def loss(self) -> float:
        """Mean cross-entropy (no label smoothing) of the predicted probabilities."""
        picked = self.probabilities.gather(1, self.labels[:, None]).clamp_min(1e-12)
        return float(-picked.log().mean())


@torch.inference_mode()
def predict_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                    tta: bool = False, temperature: float = 1.0) -> Predictions:
    """The model's float32 logits for every batch (``tta``: also those of the mirrored images), probabilities at
    ``temperature``."""
    model.eval()
    logits, mirrored, labels = [], [], []
    for images, batch_labels in batches:
        logits.append(model(images).float())
        if tta:
            mirrored.append(model(images.flip(3)).float())
        labels.append(batch_labels)
    return Predictions(torch.cat(logits).cpu(), torch.cat(labels).cpu(),
                       torch.cat(mirrored).cpu() if tta else None, temperature)
