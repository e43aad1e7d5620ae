"""The model a server answers with: loaded once from what ``eval`` and ``predict`` accept, run by a backend."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import ImageSet
from ..data.images import decode_image
from ..engine.backends import answering_model, choose_backend, load_for_backend
from ..engine.exported import is_exported
from ..engine.loop import predict_batches
from ..engine.pretrained import pretrained_manifest, pretrained_weights
from ..engine.trained import TrainedModel
from ..errors import ResnetCifarError


@dataclass
class ServedModel:
    """A trained model ready to classify batches of images, and what ``/info`` says about it."""

    trained: TrainedModel
    network: nn.Module
    backend: str
    name: str
    accuracy: dict[str, Any] | None

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) of uint8 images (N, C, H, W) of the model's input size."""
        unlabelled = ImageSet(images, torch.zeros(len(images), dtype=torch.int64), self.trained.class_names)
        return predict_batches(self.network, self.trained.batches(unlabelled)).probabilities

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

    def info(self) -> dict[str, Any]:
        trained = self.trained
        return {"model": self.name, "architecture": trained.info["model"], "classes": trained.class_names,
                "input_size": list(trained.input_size), "mean": trained.mean, "std": trained.std,
                "backend": self.backend, "accuracy": self.accuracy}


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


def load_served_model(source: str | None, pretrained: str | None, backend: str, device: str = "auto") -> ServedModel:
    """Load ``source`` (run folder, model folder, checkpoint, exported file) or shipped weights ``pretrained``, and
    prepare it for ``backend`` (``auto``: the fastest installed for the device)."""
    path = pretrained_weights(pretrained) if pretrained else Path(str(source))
    trained = load_for_backend(path, backend, device)
    chosen = choose_backend(trained, backend)
    network = answering_model(trained, chosen)
    name = pretrained or (path.name if path.is_dir() or is_exported(path) else path.parent.name)
    return ServedModel(trained, network, chosen, name, _known_accuracy(path, pretrained))


def _known_accuracy(path: Path, pretrained: str | None) -> dict[str, Any] | None:
    """The test accuracy measured for these weights: the manifest's for shipped ones, else an ``eval.json`` beside
    them (what ``resnet-cifar eval`` wrote), else none."""
    if pretrained:
        entry = pretrained_manifest()[pretrained]
        return {"top1": entry["test_accuracy"], "evaluated_on": entry["evaluated_on"]}
    report = (path if path.is_dir() else path.parent) / "eval.json"
    try:
        results = json.loads(report.read_text())
        return {"top1": float(results["accuracy"]), "evaluated_on": f"{results['dataset']} {results['split']} "
                f"split ({results['images']} images), {report}"}
    except (OSError, ValueError, KeyError, TypeError):
        return None
