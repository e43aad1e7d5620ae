"""``evaluate(run_or_weights)``: accuracy and loss, per-class accuracy, calibration, confusion matrix and image
grids."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.batches import Predictions, predict_batches, tta_mode
from ..core.source import ModelSource
from ..data import ImageSet, load_dataset
from ..data.corruptions import SEVERITIES, check_corruptions
from ..errors import ResnetCifarError, require_seed
from ..files import atomic_write_json
from ..plots import overlaid, plot_confusion, plot_image_grid, plot_reliability, plot_robustness
from .backends import choose_backend, load_for_backend, runnable
from .calibration import calibration_report
from .export import INT8_CALIBRATION_IMAGES
from .robustness import Runner, corruption_accuracies, robustness_report
from .trained import TrainedModel

GRID_IMAGES = 64


def evaluate(model: TrainedModel | ModelSource | str | Path, *, dataset: str | None = None,
             data_dir: str | Path | None = None, split: str = "test", tta: str | bool = "off",
             out_dir: str | Path | None = None, device: str = "auto", download: bool = True, int8: bool = False,
             backend: str | None = None, explain: bool = False, corruptions: Sequence[str] | None = None,
             severities: Sequence[int] = SEVERITIES, corruption_seed: int = 0,
             reference: TrainedModel | ModelSource | str | Path | None = None) -> dict[str, Any]:
    """Evaluate a model (loaded, or its source: saved weights, an exported file, shipped weights) on a dataset
    split; writes ``eval.json`` and the figures, returns the results.

    ``dataset``/``data_dir`` default to those the model was trained on; ``out_dir`` to the model's folder
    (``ModelSource.folder``: ``./eval-NAME`` for shipped weights). ``backend``
    runs it with PyTorch or, exported, with ONNX Runtime or OpenVINO on the CPU (``inference.backends``; default:
    PyTorch, or the runtime of an exported file). ``int8`` evaluates the model quantised to int8 on the CPU,
    calibrated on training images (OpenVINO + NNCF, or PyTorch + torchao). ``explain`` also draws the grids with
    each image's Grad-CAM map for its predicted class laid over it (``predictions-cam.png``, ``mistakes-cam.png``;
    the PyTorch model's maps, float32). ``corruptions`` (names, or ``["all"]``) also measures the accuracy on
    the split corrupted as CIFAR-10-C at ``severities`` (``inference.robustness``; the corrupted copies are kept
    under ``data_dir``; the same images for the same ``corruption_seed``), relative to a ``reference`` model when
    one is given, and draws ``robustness.png``.
    """
    names = check_corruptions(list(corruptions)) if corruptions is not None else None  # refused before any work
    require_seed(corruption_seed)
    tta = tta_mode(tta)
    trained = load_for_backend(model, backend, device, int8=int8)
    if explain:
        trained.require_gradients("--explain needs the PyTorch model")
    backend = choose_backend(trained, backend, int8=int8)
    config = trained.info.get("config", {})
    dataset = dataset or trained.info.get("dataset", "cifar10")
    data_dir = data_dir if data_dir is not None else config.get("data_dir", "data")
    data = load_dataset(dataset, split, data_dir, image_size=trained.input_size[1:], class_names=trained.class_names,
                        download=download)
    if data.class_names != trained.class_names:
        raise ResnetCifarError(f"{dataset} has classes {data.class_names[:5]}..., the model knows "
                               f"{trained.class_names[:5]}...: evaluate on the dataset it was trained for")
    calibration = _int8_calibration(trained, dataset, data_dir, download) if int8 else None
    model = runnable(trained, backend, calibration)
    predictions = predict_batches(model, trained.batches(data), tta=tta, temperature=trained.temperature)
    results = summarise(predictions, trained.class_names)
    results["calibration"] = calibration_report(predictions)
    if predictions.temperature != 1:
        results["calibration_before_scaling"] = calibration_report(predictions.at_temperature(1.0))
    results.update({"source": str(trained.source.path) if trained.source else None, "dataset": dataset,
                    "split": split, "tta": tta, "int8": int8, "backend": backend})
    if out_dir is None and trained.source is None:
        raise ResnetCifarError("give out_dir: this model was not loaded from a folder or file, so its reports have "
                               "no folder of their own")
    out = Path(out_dir) if out_dir is not None else trained.source.folder
    if names is not None:
        results["corruptions"] = _robustness(trained, model, data, names, severities, data_dir, corruption_seed,
                                             tta, int8, reference, backend, device)
    cam = _cam_pictures(trained, data, predictions.predicted) if explain else None
    write_reports(out, data.images, predictions, trained.class_names, results, cam=cam)
    plot_reliability(results["calibration"], out / "reliability.png", results.get("calibration_before_scaling"))
    if names is not None:
        plot_robustness(results["corruptions"], out / "robustness.png")
    return results


def _robustness(trained: TrainedModel, model: torch.nn.Module, data: ImageSet, names: list[str],
                severities: Sequence[int], data_dir: str | Path, seed: int, tta: str, int8: bool,
                reference: TrainedModel | ModelSource | str | Path | None, backend: str,
                device: str) -> dict[str, Any]:
    """The accuracy under each corruption, and the reference's on the same corrupted images; the clean accuracy
    of the report measured as the corrupted ones are (``Runner``)."""
    runner = Runner.for_backend(trained, model, backend, int8)
    table = corruption_accuracies(runner, data, names, severities, data_dir=data_dir, seed=seed, tta=tta)
    compared = None
    if reference is not None:
        other = load_for_backend(reference, backend, device)
        if other.class_names != trained.class_names or other.input_size != trained.input_size:
            raise ResnetCifarError(f"--reference takes {len(other.class_names)} classes at {other.input_size}, the "
                                   f"model {len(trained.class_names)} at {trained.input_size}: give a reference "
                                   f"trained on the same dataset")
        chosen = choose_backend(other, backend)
        theirs = Runner.for_backend(other, runnable(other, chosen, None), chosen)
        compared = (theirs.accuracy(data, tta), corruption_accuracies(theirs, data, names, severities,
                                                                      data_dir=data_dir, seed=seed, tta=tta))
    report = robustness_report(runner.accuracy(data, tta), table, reference=compared, precision=runner.precision)
    return {**report, "seed": seed}


def _cam_pictures(trained: TrainedModel, data: ImageSet,
                  predicted: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function of image indices: those images with each one's Grad-CAM map (its predicted class, the default
    layer) laid over it."""
    from .explain import explain  # gradients and hooks: only for --explain

    def pictures(index: torch.Tensor) -> torch.Tensor:
        images = trained.normalised(data.subset(index))
        maps = explain(trained.model, images, targets=predicted[index, None].to(images.device)).maps[:, 0]
        return overlaid(data.images[index], maps)
    return pictures


def _int8_calibration(trained: TrainedModel, dataset: str, data_dir: str | Path, download: bool) -> np.ndarray:
    """Training images spread over the split, preprocessed: what int8 quantisation calibrates on."""
    train = load_dataset(dataset, "train", data_dir, image_size=trained.input_size[1:],
                         class_names=trained.class_names, download=download)
    return trained.preprocessed(train.spread(INT8_CALIBRATION_IMAGES))


def summarise(predictions: Predictions, class_names: list[str]) -> dict[str, Any]:
    """Overall and per-class accuracy, loss and the confusion matrix (rows: truth, columns: prediction)."""
    num_classes = len(class_names)
    confusion = torch.bincount(predictions.labels * num_classes + predictions.predicted,
                               minlength=num_classes * num_classes).view(num_classes, num_classes)
    per_class = {}
    for index, name in enumerate(class_names):
        count = int(confusion[index].sum())
        per_class[name] = {"images": count, "accuracy": float(confusion[index, index]) / count if count else None}
    return {"images": len(predictions.labels), "correct": predictions.correct, "accuracy": predictions.accuracy,
            "loss": predictions.loss, "per_class": per_class, "confusion": confusion.tolist()}


def write_reports(out: Path, images: torch.Tensor, predictions: Predictions, class_names: list[str],
                  results: dict[str, Any], cam: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """``eval.json``, ``confusion.png``, ``predictions.png`` (64 images spread over the split) and ``mistakes.png``;
    with ``cam`` (image indices -> pictures with maps) also ``predictions-cam.png`` and ``mistakes-cam.png``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "eval.json", results)
    plot_confusion(torch.tensor(results["confusion"]), class_names, out / "confusion.png")
    predicted, labels = predictions.predicted, predictions.labels
    # Evenly spaced, so a split stored class by class still shows every class.
    spread = torch.linspace(0, len(labels) - 1, min(GRID_IMAGES, len(labels))).round().long()
    wrong = torch.nonzero(predicted != labels).flatten()
    confidence = predictions.probabilities.max(1).values[wrong]
    worst = wrong[confidence.argsort(descending=True)[:GRID_IMAGES]]
    grids = {"predictions": (spread, f"prediction (truth): {100 * results['accuracy']:.2f}% of {results['images']} "
                                     f"correct"),
             "mistakes": (worst, "most confident mistakes: prediction (truth)")}
    with_maps = {}
    if cam is not None:  # the images of both grids explained in one pass
        union, where = torch.cat([spread, worst]).unique(return_inverse=True)
        pictures = cam(union)
        with_maps = {"predictions": pictures[where[:len(spread)]], "mistakes": pictures[where[len(spread):]]}
    for name, (index, heading) in grids.items():
        variants = [(with_maps[name], out / f"{name}-cam.png", f"Grad-CAM of the predicted class: {heading}")
                    ] if name in with_maps else []
        titles = [f"{class_names[predicted[i]]} ({class_names[labels[i]]})" for i in index.tolist()]
        plot_image_grid(images[index], titles, (predicted[index] == labels[index]).tolist(), out / f"{name}.png",
                        heading=heading, variants=variants)


def format_per_class(results: dict[str, Any]) -> str:
    """A table of per-class accuracy, then the overall line."""
    lines = [f"{'class':<16} {'images':>6} {'accuracy':>9}"]
    for name, row in results["per_class"].items():
        accuracy = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}%"
        lines.append(f"{name:<16} {row['images']:>6} {accuracy:>9}")
    lines.append(f"{'overall':<16} {results['images']:>6} {100 * results['accuracy']:>8.2f}%   "
                 f"loss {results['loss']:.4f}{'  (' + results['tta'] + ' TTA)' if results['tta'] != 'off' else ''}"
                 f"{'  (int8)' if results.get('int8') else ''}"
                 f"{'  (backend ' + results['backend'] + ')' if results.get('backend', 'torch') != 'torch' else ''}")
    lines.append(format_calibration(results["calibration"], results.get("calibration_before_scaling")))
    return "\n".join(lines)


def format_calibration(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """One line: ECE, MCE, NLL and Brier score (and the temperature and the ECE before it, when calibrated)."""
    line = (f"calibration: ECE {100 * report['ece']:.2f}%  MCE {100 * report['mce']:.2f}%  NLL {report['nll']:.4f}  "
            f"Brier {report['brier']:.4f}")
    if before is not None:
        line += f"  (temperature {report['temperature']:.3g}; before: ECE {100 * before['ece']:.2f}%)"
    return line
