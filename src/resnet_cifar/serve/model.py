"""The model a server answers with: loaded once from what ``eval`` and ``predict`` accept, run by a backend."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.batches import predict_batches
from ..core.source import ModelSource
from ..data import ImageSet
from ..data.images import decode_image
from ..errors import ResnetCifarError
from ..inference.backends import answering_model, choose_backend, load_for_backend
from ..inference.trained import TrainedModel


@dataclass
class ServedModel:
    """A trained model ready to classify batches of images, and what ``/info`` says about it."""

    trained: TrainedModel
    network: nn.Module
    backend: str
    name: str
    accuracy: dict[str, Any] | None
    explaining: threading.Lock = field(default_factory=threading.Lock)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) of uint8 images (N, C, H, W) of the model's input size."""
        unlabelled = ImageSet(images, torch.zeros(len(images), dtype=torch.int64), self.trained.class_names)
        return predict_batches(self.network, self.trained.batches(unlabelled),
                               temperature=self.trained.temperature).probabilities

    def answer(self, uploads: list[Upload]) -> list[torch.Tensor | ResnetCifarError]:
        """Each upload's class probabilities, or why it could not be decoded; one forward pass for them all."""
        decoded: list[torch.Tensor | ResnetCifarError] = []
        for upload in uploads:
            try:
                decoded.append(upload.decoded(self.trained.input_size[1:]))
            except ResnetCifarError as error:
                decoded.append(error)
        images = [image for image in decoded if isinstance(image, torch.Tensor)]
        if not images:
            return decoded
        rows = iter(self.classify(torch.stack(images)))
        return [next(rows) if isinstance(image, torch.Tensor) else image for image in decoded]

    def explain(self, image: torch.Tensor, top_k: int, *, method: str = "gradcam", layer: str | None = None,
                target: str = "top") -> Any:
        """Maps of one uint8 image (C, H, W) of the input size, by ``method`` at ``layer`` (as ``explain`` takes
        them), for ``target`` (a class name or number) or its ``top_k`` most probable classes; computed with the
        PyTorch model (not the folded copy that answers /predict), one request at a time: the layer's hook must see
        only its own forward pass."""
        from ..inference.explain import explain, target_classes  # gradients and hooks: only for /explain

        self.trained.require_gradients("explanations need a PyTorch model")
        images = self.trained.normalised(image[None])
        targets = target_classes(target, self.trained.class_names, 1)
        with self.explaining:
            return explain(self.trained.model, images, method=method, layer=layer, targets=targets,
                           top_k=min(top_k, len(self.trained.class_names)), temperature=self.trained.temperature)

    def info(self) -> dict[str, Any]:
        trained = self.trained
        return {"model": self.name, "architecture": trained.info["model"], "classes": trained.class_names,
                "input_size": list(trained.input_size), "mean": trained.mean, "std": trained.std,
                "backend": self.backend, "accuracy": self.accuracy,
                "explanations": trained.runtime is None,  # /explain needs gradients: the PyTorch model
                "temperature": trained.temperature, "calibration": trained.info.get("calibration")}


@dataclass
class Upload:
    """An image as sent (bytes, decoded when its batch runs), already decoded (uint8 (C, H, W)), or the error its
    decoding raised."""

    data: bytes | torch.Tensor | ResnetCifarError
    name: str
    max_pixels: int

    def decoded(self, size: tuple[int, int]) -> torch.Tensor:
        if isinstance(self.data, ResnetCifarError):
            raise self.data
        if isinstance(self.data, torch.Tensor):
            return self.data
        return decode_image(self.data, size, name=self.name, max_pixels=self.max_pixels)


def load_served_model(model: TrainedModel | ModelSource | str | Path, backend: str,
                      device: str = "auto") -> ServedModel:
    """``model`` (loaded, or its source: run folder, model folder, checkpoint, exported file, shipped weights)
    prepared for ``backend`` (``auto``: the fastest installed for the device)."""
    trained = load_for_backend(model, backend, device)
    chosen = choose_backend(trained, backend)
    network = answering_model(trained, chosen)
    source = trained.source
    return ServedModel(trained, network, chosen, source.name if source else trained.info["model"],
                       source.known_accuracy() if source else None)
