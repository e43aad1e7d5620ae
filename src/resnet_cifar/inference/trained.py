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

    def preprocessed(self, data: ImageSet) -> np.ndarray:
        """All of ``data`` preprocessed as the model was trained: float32 (N, C, H, W) on the CPU, for runtimes."""
        return torch.cat([images.float().cpu() for images, _ in self.batches(data)]).numpy()
