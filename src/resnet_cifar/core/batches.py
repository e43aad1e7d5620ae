"""One evaluation pass: class probabilities of a model over batches, as training's evaluation, ``eval``, ``predict``
and ``serve`` all compute them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

# Evaluation batch size, fixed so that training-time and ``eval`` figures come from identical batches.
EVAL_BATCH_SIZE = 500


@dataclass
class Predictions:
    """Outputs of a model over a dataset, kept on the CPU for reports."""

    probabilities: torch.Tensor  # float32 (N, num_classes)
    labels: torch.Tensor  # int64 (N,)

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
                    tta: bool = False) -> Predictions:
    """Class probabilities in float32 for every batch; ``tta`` averages with the mirrored images."""
    model.eval()
    probabilities, labels = [], []
    for images, batch_labels in batches:
        probs = F.softmax(model(images).float(), dim=1)
        if tta:
            probs = (probs + F.softmax(model(images.flip(3)).float(), dim=1)) / 2
        probabilities.append(probs)
        labels.append(batch_labels)
    return Predictions(torch.cat(probabilities).cpu(), torch.cat(labels).cpu())
