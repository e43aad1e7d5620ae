"""A shipped model's card: what it scores (clean, with TTA, under the 15 CIFAR-10-C corruptions), how far its
probabilities can be trusted (ECE before and after its temperature), what it costs (parameters, MACs, CPU images/s
in float32 and int8), and where it came from (the command and host that trained it, the host that measured it).

No model zoo we know of publishes calibration or corruption figures beside its weights; the card puts them in the
manifest, where ``resnet-cifar models --pretrained`` and the docs' table read them.
"""
from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

import torch

from .bench import INFER_VARIANTS, inference_throughput
from .core.device import cpu_description
from .core.source import ModelSource
from .data.corruptions import BENCHMARK
from .errors import ResnetCifarError
from .flops import model_flops
from .inference.evaluate import evaluate
from .inference.int8 import int8_available
from .inference.loading import load_trained_model
from .models.summary import count_parameters_of

# What the card's CPU speed columns time: PyTorch float32 with BatchNorm folded, and int8 (torchao), batch 128.
FP32_VARIANT = next(variant for variant in INFER_VARIANTS if variant.name == "float32 + folded BN")
INT8_VARIANT = next(variant for variant in INFER_VARIANTS if variant.int8 and not variant.runtime)
SPEED_BATCH = 128

# The card's columns in the order ``models --pretrained`` prints them: (key, heading, format).
CARD_COLUMNS = (("parameters", "params", "{:,}"), ("macs", "MACs", "{:.3g}"),
                ("test_accuracy", "accuracy", "{:.2%}"), ("tta_accuracy", "with TTA", "{:.2%}"),
                ("ece_before", "ECE", "{:.2%}"), ("ece_after", "ECE after T", "{:.2%}"),
                ("corruption_accuracy", "15 corruptions", "{:.2%}"),
                ("cpu_fp32_images_per_s", "fp32 img/s", "{:,.0f}"), ("cpu_int8_images_per_s", "int8 img/s", "{:,.0f}"))


def measure_card(folder: str | Path, *, data_dir: str | Path, command: str, recipe: str, trained_on: str,
                 device: str = "cpu", speed_steps: int = 20, corruptions: tuple[str, ...] = BENCHMARK,
                 int8: bool = True) -> dict:
    """Every column of the card for the model in ``folder`` (a run or model folder with a fitted temperature),
    measured on the test split under ``data_dir``; ``command``, ``recipe`` and ``trained_on`` (the host, in
    words) say where it came from. CPU speeds are timed here, on this machine, which the card names; ``int8``
    False (or no int8 here) leaves that column out."""
    trained = load_trained_model(ModelSource(Path(folder)), device)
    if trained.temperature == 1:
        raise ResnetCifarError(f"{folder} has no fitted temperature: run 'resnet-cifar calibrate {folder}' first "
                               f"(it needs a run trained with --val-split)")
    info = trained.info
    options = {"num_classes": len(trained.class_names), **info.get("model_options", {})}
    with tempfile.TemporaryDirectory() as scratch:
        clean = evaluate(trained, data_dir=data_dir, out_dir=scratch, download=False, corruptions=list(corruptions))
        tta = evaluate(trained, data_dir=data_dir, out_dir=scratch, download=False, tta=True)
    cpu = torch.device("cpu")
    return {
        "parameters": count_parameters_of(info["model"], **options),
        "macs": round(model_flops(info["model"], training=False, image_size=trained.input_size[1], **options) / 2),
        "test_accuracy": clean["accuracy"], "tta_accuracy": tta["accuracy"],
        "ece_before": clean["calibration_before_scaling"]["ece"], "ece_after": clean["calibration"]["ece"],
        "temperature": trained.temperature,
        "corruption_accuracy": clean["corruptions"]["mean_corruption_accuracy"],
        "corruptions": list(corruptions),
        "cpu_fp32_images_per_s": inference_throughput(info["model"], SPEED_BATCH, cpu, FP32_VARIANT,
                                                      steps=speed_steps),
        "cpu_int8_images_per_s": inference_throughput(info["model"], SPEED_BATCH, cpu, INT8_VARIANT,
                                                      steps=speed_steps) if int8 and int8_available() else None,
        "speed": f"batch {SPEED_BATCH}, {FP32_VARIANT.name} / {INT8_VARIANT.name}, {torch.get_num_threads()} "
                 f"threads",
        "recipe": recipe, "command": command, "trained_on": trained_on,
        "measured_on": cpu_description(), "measured": datetime.date.today().isoformat(),
    }


def card_table(cards: dict[str, dict[str, Any]]) -> str:
    """The cards as a plain-text table, one row per shipped model ("-" where a column was not measured), then
    each model's recipe, command and hosts."""
    headings = ["name", *(heading for _, heading, _ in CARD_COLUMNS)]
    rows = [[name, *(card_cell(card, key, form) for key, _, form in CARD_COLUMNS)] for name, card in cards.items()]
    widths = [max(len(str(row[i])) for row in [headings, *rows]) for i in range(len(headings))]
    lines = ["  ".join(str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in [headings, *rows]]
    for name, card in cards.items():
        told = [f"{words} {card[key]}" for key, words in (("recipe", "recipe"), ("command", "trained by"),
                                                            ("trained_on", "on"), ("measured_on", "measured on"),
                                                            ("measured", "in"), ("speed", "timing"))
                if card.get(key)]
        lines.append(f"{name}: {', '.join(told) or 'no card yet'}")
    return "\n".join(lines[:len(rows) + 1] + [""] + lines[len(rows) + 1:])


def card_cell(card: dict[str, Any], key: str, form: str) -> str:
    """One column of a card as shown: formatted, or "-" where it was not measured."""
    value = card.get(key)
    return "-" if value is None else form.format(value)
