"""What the user means by a model, decided once for every command: a run or model folder, a ``.pt`` checkpoint,
a ``.safetensors`` file, a file written by ``export`` (``.onnx``, ``.xml``, ``.pt2``), or shipped weights by name
(``--pretrained NAME``). ``resolve_source`` turns what was typed into a ``ModelSource``: what it is, which file
to load, where its outputs go and the accuracy known for it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError
from ..models.weights import ShippedWeights, find_shipped

# File suffix of an exported model -> the runtime that runs it (a .pt2 program is PyTorch's own).
EXPORTED_RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino", ".pt2": "torch"}
WHAT_A_SOURCE_IS = ("a run folder, model folder, .pt checkpoint, .safetensors file or exported .onnx/.xml/.pt2 "
                    "file")


@dataclass(frozen=True)
class ModelSource:
    """A model as the user named it. ``path`` is what to load (for shipped weights, their verified
    ``model.safetensors`` inside the package); ``shipped`` is set for ``--pretrained NAME``."""

    path: Path
    shipped: ShippedWeights | None = None

    @property
    def is_exported(self) -> bool:
        """A file written by ``export``, run by a runtime; it holds no PyTorch weights."""
        return self.path.suffix.lower() in EXPORTED_RUNTIMES

    @property
    def runtime(self) -> str | None:
        return EXPORTED_RUNTIMES.get(self.path.suffix.lower())

    @property
    def name(self) -> str:
        """A short name: the shipped weights' name, a folder's or exported file's name, or the folder holding a
        weights file."""
        if self.shipped is not None:
            return self.shipped.name
        return self.path.name if self.path.is_dir() or self.is_exported else self.path.parent.name

    @property
    def folder(self) -> Path:
        """The folder that belongs to this model: where ``eval`` writes and ``eval.json`` is read (for shipped
        weights, ``./eval-NAME``: never inside the installed package)."""
        if self.shipped is not None:
            return Path(f"eval-{self.shipped.name}")
        return self.path if self.path.is_dir() else self.path.parent

    def subfolder(self, name: str) -> Path:
        """Where a command's files go by default: ``NAME/`` in the model's folder, ``./NAME-WEIGHTS`` for shipped
        weights."""
        if self.shipped is not None:
            return Path(f"{name}-{self.shipped.name}")
        return self.folder / name

    def export_path(self, suffix: str) -> Path:
        """Where ``export`` writes by default: ``model.SUFFIX`` in the model's folder, ``./NAME.SUFFIX`` for shipped
        weights."""
        if self.shipped is not None:
            return Path(f"{self.shipped.name}{suffix}")
        return self.folder / f"model{suffix}"

    def holds_model(self) -> bool:
        """Whether something loadable is already there (a folder with ``model.safetensors``, or a model file)."""
        return (self.path / "model.safetensors").is_file() if self.path.is_dir() else self.path.is_file()

    def require_weights(self, purpose: str) -> None:
        """Refuse an exported file where PyTorch weights are needed (``purpose``: what they are needed for)."""
        if self.is_exported:
            raise ResnetCifarError(f"{self.path} is an exported file, which holds no PyTorch weights to {purpose}: "
                                   f"give the run folder, model folder or .pt checkpoint it was exported from")

    def known_accuracy(self) -> dict[str, Any] | None:
        """The test accuracy measured for this model: the manifest's for shipped weights, else the ``eval.json``
        that ``resnet-cifar eval`` wrote in its folder, else none."""
        if self.shipped is not None:
            return {"top1": self.shipped.test_accuracy, "evaluated_on": self.shipped.evaluated_on}
        report = self.folder / "eval.json"
        try:
            results = json.loads(report.read_text())
            return {"top1": float(results["accuracy"]), "evaluated_on": f"{results['dataset']} {results['split']} "
                    f"split ({results['images']} images), {report}"}
        except (OSError, ValueError, KeyError, TypeError):
            return None


def resolve_source(source: str | Path | ModelSource | None, pretrained: str | None = None) -> ModelSource:
    """The model the user means: ``source`` (a path, or a ``ModelSource`` already resolved) or shipped weights
    ``pretrained``, exactly one of them."""
    if isinstance(source, ModelSource) and pretrained is None:
        return source
    if source is not None and pretrained is not None:
        raise ResnetCifarError(f"give {WHAT_A_SOURCE_IS}, or --pretrained NAME, not both")
    if source is None and pretrained is None:
        raise ResnetCifarError(f"give a model: {WHAT_A_SOURCE_IS}, or --pretrained NAME")
    if pretrained is not None:
        shipped = find_shipped(pretrained)
        return ModelSource(shipped.path(), shipped)
    return ModelSource(Path(source))
