"""One training epoch: the only code that trains the model over batches (evaluation: ``core.batches``)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from ..core.device import autocast
from ..core.distributed import max_across_ranks, sum_across_ranks
from ..errors import ResnetCifarError

# A progress callback gets (batches done, running loss, running accuracy, images per second); the loop calls it
# at most every REFRESH_S seconds, as reading the running sums forces the host to wait for the device.
Progress = Callable[[int, float, float, float], None]
REFRESH_S = 0.5


class NonFiniteLoss(Exception):
    """A batch's loss was NaN or infinite; ``batch`` is its 1-based position in the epoch."""

    def __init__(self, batch: int) -> None:
        super().__init__(f"non-finite loss at batch {batch}")
        self.batch = batch


@dataclass
class EpochTally:
    """Running sums of the epoch in progress, kept on the device so that adding to them never waits for it."""

    batches: int = 0  # batches consumed, skipped ones included: where a resumed epoch continues
    seen: int = 0
    skipped: int = 0
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    first_nonfinite: torch.Tensor | None = None  # on the device: the first batch with a NaN/inf loss, or -1

    def note_nonfinite(self, loss: torch.Tensor) -> None:
        """Remember (on the device, without waiting for it) if this batch's loss is not finite."""
        if self.first_nonfinite is None:
            self.first_nonfinite = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self.first_nonfinite < 0)
        self.first_nonfinite = torch.where(bad, self.batches, self.first_nonfinite)

    def raise_if_nonfinite(self, across_ranks: bool = True) -> None:
        """Raise ``NonFiniteLoss`` if any batch so far had a non-finite loss (reads the device).

        ``across_ranks`` (a collective: every process must call it) raises in every process if one of them saw
        a non-finite loss, so that no rank saves weights that another rank's NaN gradient has touched.
        """
        if self.first_nonfinite is None:
            return
        first = max_across_ranks(self.first_nonfinite) if across_ranks else self.first_nonfinite
        if (batch := int(first)) >= 0:
            raise NonFiniteLoss(batch)

    def reduced(self) -> EpochTally:
        """The tally of every process together (a collective; ``self`` when training alone)."""
        if self.loss_sum is None:
            return self
        seen = torch.tensor(float(self.seen), dtype=torch.float64, device=self.loss_sum.device)
        local = torch.stack([self.loss_sum.double(), self.correct.double(), seen])
        total = sum_across_ranks(local)
        if total is local:
            return self
        return EpochTally(self.batches, int(total[2]), self.skipped, total[0].float(), total[1].long(),
                          self.first_nonfinite)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Count a batch; ``labels`` are class indices, or class probabilities (mixup, CutMix), where the class
        with the most weight counts as the label."""
        labels = labels if labels.ndim == 1 else labels.argmax(1)
        batch_loss = loss.detach().float() * labels.numel()
        batch_correct = (logits.detach().argmax(1) == labels).sum()
        self.loss_sum = batch_loss if self.loss_sum is None else self.loss_sum + batch_loss
        self.correct = batch_correct if self.correct is None else self.correct + batch_correct
        self.seen += labels.numel()

    @property
    def loss(self) -> float:
        """Mean training loss so far (reads the device)."""
        return self.loss_sum.item() / self.seen if self.seen else float("nan")

    @property
    def accuracy(self) -> float:
        """Training accuracy so far (reads the device)."""
        return self.correct.item() / self.seen if self.seen else float("nan")

    def state_dict(self) -> dict:
        return {"batches": self.batches, "seen": self.seen, "skipped": self.skipped, "loss_sum": self.loss_sum,
                "correct": self.correct}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> EpochTally:
        tensors = {k: (state[k].to(device) if state[k] is not None else None) for k in ("loss_sum", "correct")}
        return cls(state["batches"], state["seen"], state["skipped"], **tensors)


def forward_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, criterion: nn.Module,
                 amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss) of one training batch under autocast: the forward half of a training step."""
    # A new step for CUDA graphs (compile mode reduce-overhead): last step's graph outputs may be reused.
    torch.compiler.cudagraph_mark_step_begin()
    with autocast(images.device, amp_dtype):
        logits = model(images)
        return logits, criterion(logits, labels)


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Gradients of ``loss`` (scaled for fp16) and one optimizer step: the second half of a training step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                optimizer: torch.optim.Optimizer, *, criterion: nn.Module, scaler: torch.amp.GradScaler,
                amp_dtype: torch.dtype | None, tally: EpochTally, after_step: Callable[[], None],
                skip_nonfinite: bool = False, progress: Progress | None = None) -> EpochTally:
    """Train over ``batches`` (the rest of an epoch), adding to ``tally``; returns it.

    ``after_step`` runs after every optimizer step (schedule, EMA, periodic checkpoints) and may raise to stop;
    it must call ``tally.raise_if_nonfinite()`` before saving anything. A non-finite loss raises
    ``NonFiniteLoss`` at the next such check (the weights in memory are then discarded, never saved), or with
    ``skip_nonfinite`` skips that batch, which costs one host synchronisation per step.
    """
    model.train()
    start = last_refresh = time.perf_counter()
    seen_before = tally.seen
    # A non-finite batch poisons the BatchNorm running statistics during its forward pass: to skip it
    # cleanly, keep a copy of the buffers from before each step (a few thousand numbers for a ResNet).
    buffers = list(model.buffers()) if skip_nonfinite else []
    saved = [b.clone() for b in buffers]
    for images, labels in batches:
        if buffers:
            torch._foreach_copy_(saved, buffers)  # one launch for all buffers, not one per buffer
        tally.batches += 1
        logits, loss = forward_loss(model, images, labels, criterion, amp_dtype)
        if skip_nonfinite and not bool(torch.isfinite(loss)):
            tally.skipped += 1
            torch._foreach_copy_(buffers, saved)
            continue
        tally.note_nonfinite(loss)
        backward_step(loss, optimizer, scaler)
        tally.add(loss, logits, labels)
        after_step()
        now = time.perf_counter()
        if progress is not None and now - last_refresh >= REFRESH_S:
            last_refresh = now
            tally.raise_if_nonfinite(across_ranks=False)  # only the main process reports progress
            progress(tally.batches, tally.loss, tally.accuracy, (tally.seen - seen_before) / (now - start))
    tally.raise_if_nonfinite()
    if not tally.seen:
        raise ResnetCifarError("an epoch trained on no batch: the training set is smaller than one batch, "
                               "or every loss was non-finite")
    if progress is not None:
        progress(tally.batches, tally.loss, tally.accuracy,
                 (tally.seen - seen_before) / max(time.perf_counter() - start, 1e-9))
    return tally
