"""``resnet-cifar calibrate``: fit a model's temperature on the validation images its run held out of training and
save it in its ``model.json``, where ``eval``, ``predict``, ``serve`` and ``export`` read it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.batches import predict_batches
from ..core.device import resolve_device
from ..core.source import ModelSource, resolve_source
from ..data import load_dataset, split_validation
from ..errors import ResnetCifarError
from ..files import atomic_write_json
from .calibration import calibration_report, fit_temperature
from .loading import load_trained_model


def calibrate(model: ModelSource | str | Path | None, *, pretrained: str | None = None,
              data_dir: str | Path | None = None, device: str = "auto", download: bool = True) -> dict[str, Any]:
    """Fit the temperature of the model in a run or model folder (or its ``model.safetensors``) by negative
    log-likelihood on its run's validation images (``train --val-split``, recreated from the run's seed), write it
    into ``model.json`` and return what changed: the temperature and the validation NLL and ECE before and after.
    The test split is never used; a model trained without a validation split is refused with what to do. A
    temperature already there is replaced, a broken one (NaN, out of range) included."""
    source = resolve_source(model, pretrained)
    info_path = _model_json(source)
    trained = load_trained_model(source, resolve_device(device), without_temperature=True)  # refit, broken or not
    config = trained.info.get("config") or {}
    held_out = config.get("val_split") or 0
    if not held_out:
        raise ResnetCifarError(f"{source.path} was trained on all its training images, so none are left to fit a "
                               f"temperature on (never the test split): train it with --val-split 5000")
    train = load_dataset(config.get("dataset", "cifar10"), "train", data_dir if data_dir is not None else
                         config.get("data_dir", "data"), image_size=trained.input_size[1:],
                         class_names=trained.class_names, download=download)
    validation = split_validation(train, held_out, config.get("seed", 0))[1]  # the images training held out
    predictions = predict_batches(trained.model, trained.batches(validation))
    temperature = fit_temperature(predictions)
    before, after = calibration_report(predictions), calibration_report(predictions.at_temperature(temperature))
    fitted = {"temperature": temperature, "images": len(validation), "split": f"validation images held out of training "
              f"(seed {config.get('seed', 0)})", "nll_before": before["nll"], "nll": after["nll"],
              "ece_before": before["ece"], "ece": after["ece"]}
    described = json.loads(info_path.read_text())
    described.update(temperature=temperature, calibration=fitted)
    atomic_write_json(info_path, described)
    return {**fitted, "model_json": str(info_path)}


def _model_json(source: ModelSource) -> Path:
    """The ``model.json`` the temperature goes into; other sources are refused with where to calibrate instead."""
    if source.shipped is not None:
        raise ResnetCifarError(f"the shipped {source.shipped.name} was trained on all its training images, so "
                               f"none are left to fit a temperature on: calibrate a run trained with --val-split")
    if source.is_exported:
        raise ResnetCifarError(f"{source.path} is an exported file: calibrate the run it came from, then export it "
                               f"again (the export carries the temperature)")
    path = source.path / "model.json" if source.path.is_dir() else source.path.with_name("model.json")
    if source.path.suffix == ".pt" or not path.is_file():
        raise ResnetCifarError(f"{source.path} has no model.json to hold a temperature: give the run folder or model "
                               f"folder (model.safetensors + model.json)")
    return path


def format_calibration_fit(fitted: dict[str, Any]) -> str:
    return (f"temperature {fitted['temperature']:.4g}, fitted on {fitted['images']:,} {fitted['split']}: NLL "
            f"{fitted['nll_before']:.4f} -> {fitted['nll']:.4f}, ECE {100 * fitted['ece_before']:.2f}% -> "
            f"{100 * fitted['ece']:.2f}% there; saved in {fitted['model_json']}")
