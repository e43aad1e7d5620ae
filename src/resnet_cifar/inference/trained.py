"""A trained model together with what using it needs: class names, input size and normalisation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..core.batches import EVAL_BATCH_SIZE
from ..core.source import ModelSource
from ..data import ImageSet
from ..data.loader import BatchLoader
from ..errors import ResnetCifarError


@dataclass
class TrainedModel:
    """A model in eval mode and the preprocessing it was trained with (from ``model.json``). ``runtime``: set for
    a file written by ``resnet-cifar export``, the backend that runs it (``model`` is then that runtime's).
    ``source``: where it was loaded from (its folder is where ``evaluate`` writes by default), if anywhere."""

    model: nn.Module
    info: dict[str, Any]
    runtime: str | None = None
    source: ModelSource | None = None

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)  # a runtime's model has none and runs on the CPU
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def takes_pixels(self) -> bool:
        """Whether the model normalises its input itself (an export with its preprocessing included)."""
        return getattr(self.model, "pixels", None) is not None

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.info["input_size"])  # type: ignore[return-value]

    @property
    def temperature(self) -> float:
        """What the logits are divided by before the softmax (``resnet-cifar calibrate``; 1: not calibrated)."""
        return float(self.info.get("temperature", 1.0))

    @property
    def mean(self) -> list[float]:
        return list(self.info["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.info["std"])

    def batches(self, data: ImageSet) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``data``, preprocessed as the model was trained, on the model's device, in order."""
        channels = self.input_size[0]
        # pixel values unchanged (x / 255 - 0) / (1 / 255) for a model that normalises them itself
        mean, std = ([0.0] * channels, [1 / 255] * channels) if self.takes_pixels else (self.mean, self.std)
        return BatchLoader(data, EVAL_BATCH_SIZE, device=self.device, mean=mean, std=std).epoch()

    def normalised(self, data: ImageSet | torch.Tensor) -> torch.Tensor:
        """All of ``data`` (a set, or uint8 images (N, C, H, W)) preprocessed as the model was trained, on its
        device."""
        if isinstance(data, torch.Tensor):
            data = ImageSet(data, torch.zeros(len(data), dtype=torch.int64), self.class_names)
        return torch.cat([images for images, _ in self.batches(data)])

    def preprocessed(self, data: ImageSet) -> np.ndarray:
        """All of ``data`` preprocessed as the model was trained: float32 (N, C, H, W) on the CPU, for runtimes."""
        return self.normalised(data).float().cpu().numpy()

    def require_gradients(self, needed_for: str) -> None:
        """Refuse an exported file, which its runtime runs without gradients, where the PyTorch model is needed
        (``needed_for``: what needs it, e.g. "explanations need a PyTorch model")."""
        if self.runtime is not None:
            raise ResnetCifarError(f"{self.info['exported']['file']} is an exported file, run by {self.runtime} "
                                   f"without gradients: {needed_for} (its run folder, model folder or .pt "
                                   f"checkpoint)")
