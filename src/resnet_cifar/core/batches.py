"""One evaluation pass: class probabilities of a model over batches, as training's evaluation, ``eval``, ``predict``
and ``serve`` all compute them."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResnetCifarError

# Evaluation batch size, fixed so that training-time and ``eval`` figures come from identical batches.
EVAL_BATCH_SIZE = 500

View = Callable[[torch.Tensor], torch.Tensor]


def _mirror(images: torch.Tensor) -> torch.Tensor:
    return images.flip(3)


def _shifted(dy: int, dx: int) -> View:
    """The images moved by (dy, dx) pixels, the uncovered border filled by reflection (airbench's TTA)."""
    def view(images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else None
        padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
        # a dense copy in the input's layout: exported runtimes take arrays, not strided views
        return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w].contiguous(
            memory_format=layout or torch.contiguous_format)
    return view


def _then_mirror(view: View) -> View:
    return lambda images: view(images).flip(3)


# Test-time augmentation: the extra views of each image and the weights of all views, the plain image's first.
# flip-translate is airbench's: the image and its mirror count 1/4 each, the image moved one pixel down-right and
# one up-left, each also mirrored, 1/8 each.
TTA_VIEWS: dict[str, tuple[tuple[View, ...], tuple[float, ...]]] = {
    "off": ((), (1.0,)),
    "flip": ((_mirror,), (0.5, 0.5)),
    "flip-translate": ((_mirror, _shifted(1, 1), _then_mirror(_shifted(1, 1)), _shifted(-1, -1),
                        _then_mirror(_shifted(-1, -1))), (0.25, 0.25, 0.125, 0.125, 0.125, 0.125)),
}
TTA_MODES = tuple(TTA_VIEWS)


def tta_mode(tta: str | bool) -> str:
    """The name of a test-time augmentation; ``True`` and ``False`` (the older switch) mean ``flip`` and ``off``."""
    mode = {True: "flip", False: "off"}.get(tta, tta) if isinstance(tta, bool) else tta
    if mode not in TTA_VIEWS:
        raise ResnetCifarError(f"unknown test-time augmentation {tta!r}: choose one of {', '.join(TTA_MODES)}")
    return mode


@dataclass(frozen=True)
class Predictions:
    """Outputs of a model over a dataset, kept on the CPU for reports: its logits (and with test-time augmentation
    those of the other views of each image), the labels, and the temperature the probabilities are computed at."""

    logits: torch.Tensor  # float32 (N, num_classes)
    labels: torch.Tensor  # int64 (N,)
    tta: str = "off"  # the test-time augmentation (TTA_VIEWS) whose extra views view_logits holds
    view_logits: torch.Tensor | None = None  # float32 (views, N, num_classes) with TTA
    temperature: float = 1.0  # logits are divided by it (temperature scaling; 1: as the model answers)

    @functools.cached_property
    def probabilities(self) -> torch.Tensor:
        """float32 (N, num_classes): softmax of the logits over the temperature; with TTA the weighted mean of
        every view's."""
        weights = TTA_VIEWS[self.tta][1]
        probabilities = weights[0] * F.softmax(self.logits / self.temperature, dim=1)
        for weight, logits in zip(weights[1:], self.view_logits if self.view_logits is not None else ()):
            probabilities += weight * F.softmax(logits / self.temperature, dim=1)
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
                    tta: str | bool = "off", temperature: float = 1.0) -> Predictions:
    """The model's float32 logits for every batch (with ``tta``, a ``TTA_MODES`` name, also those of each extra
    view), probabilities at ``temperature``."""
    mode = tta_mode(tta)
    views = TTA_VIEWS[mode][0]
    model.eval()
    logits, labels = [], []
    for images, batch_labels in batches:
        logits.append(torch.stack([model(images).float(), *(model(view(images)).float() for view in views)]))
        labels.append(batch_labels)
    every_view = torch.cat(logits, dim=1).cpu()
    return Predictions(every_view[0], torch.cat(labels).cpu(), mode, every_view[1:] if views else None, temperature)
