"""One training epoch and one evaluation pass: the only code that runs the model over batches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResnetCifarError
from .device import autocast

# A progress callback gets (batches done, running loss, running accuracy, images per second); the loop calls it
# at most every REFRESH_S seconds, as reading the running sums forces the host to wait for the device.
Progress = Callable[[int, float, float, float], None]
REFRESH_S = 0.5


@dataclass
class EpochStats:
    """Mean loss and accuracy over the images seen in one epoch."""

    loss: float
    accuracy: float


def train_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                optimizer: torch.optim.Optimizer, *, criterion: nn.Module, scaler: torch.amp.GradScaler,
                amp_dtype: torch.dtype | None, after_step: Callable[[], None],
                progress: Progress | None = None) -> EpochStats:
    """Train over ``batches`` once; ``after_step`` runs after every optimizer step (schedule, EMA)."""
    model.train()
    start = last_refresh = time.perf_counter()
    loss_sum = correct = None
    seen = steps = 0
    for images, labels in batches:
        with autocast(images.device, amp_dtype):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        after_step()
        # Running sums stay on the device: no host synchronisation per step.
        batch_loss = loss.detach().float() * labels.numel()
        batch_correct = (logits.detach().argmax(1) == labels).sum()
        loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
        seen += labels.numel()
        steps += 1
        now = time.perf_counter()
        if progress is not None and now - last_refresh >= REFRESH_S:
            last_refresh = now
            progress(steps, loss_sum.item() / seen, correct.item() / seen, seen / (now - start))
    if not seen:
        raise ResnetCifarError("an epoch had no batches: the training set is smaller than one batch")
    mean_loss = loss_sum.item() / seen
    if progress is not None:
        progress(steps, mean_loss, correct.item() / seen, seen / (time.perf_counter() - start))
    return EpochStats(mean_loss, correct.item() / seen)


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
