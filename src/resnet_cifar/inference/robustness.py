"""Accuracy under common corruptions (CIFAR-10-C's, ``data.corruptions``): per corruption and severity, the mean
corruption accuracy, and with a reference model the corruption errors relative to it (Hendrycks and Dietterich
2019: CE and relative CE per corruption, their means mCE and relative mCE over the benchmark's 15)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..core.batches import predict_batches
from ..core.device import autocast, resolve_amp
from ..data import ImageSet
from ..data.corrupted import corrupted_set, fill_cache
from ..data.corruptions import BENCHMARK, CORRUPTIONS, NOT_COMPARABLE, SEVERITIES
from ..errors import ResnetCifarError, require_seed
from .backends import answering_model
from .trained import TrainedModel


def parse_severities(text: str) -> list[int]:
    """``--severities``: ``1-5``, ``3`` or ``1,3,5``; a one-line refusal outside 1-5."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            chosen = list(range(low, high + 1))
        else:
            chosen = [int(part) for part in text.split(",")]
    except ValueError:
        chosen = []
    if not chosen or any(severity not in SEVERITIES for severity in chosen):
        raise ResnetCifarError(f"--severities {text!r}: give severities from 1 to 5, as 1-5, 3 or 1,3,5")
    return sorted(set(chosen))


@dataclass
class Runner:
    """How the corrupted sets are run: the model (for PyTorch a copy with BatchNorm folded, channels-last), the
    autocast dtype (bf16 where the device has it natively, as training's ``--amp auto``; None: float32)."""

    model: nn.Module
    trained: TrainedModel
    dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def for_backend(cls, trained: TrainedModel, model: nn.Module, backend: str, int8: bool = False) -> Runner:
        """The fastest faithful way to run ``trained`` for 95 passes over a split: PyTorch float32 models folded,
        channels-last and autocast (1.65x from folding and the layout, 3.8x with bf16 on an AVX-512-bf16 CPU:
        BENCHMARKS.md); runtimes and int8 models as they are."""
        if backend != "torch" or trained.runtime is not None or int8:
            return cls(model, trained)
        fast = answering_model(trained, backend).to(memory_format=torch.channels_last)  # BatchNorm folded
        return cls(fast, trained, resolve_amp("auto", trained.device), True)

    @property
    def precision(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def accuracy(self, data: ImageSet, tta: str | bool) -> float:
        batches = ((images.contiguous(memory_format=torch.channels_last) if self.channels_last else images, labels)
                   for images, labels in self.trained.batches(data))
        with autocast(self.trained.device, self.dtype):
            return predict_batches(self.model, batches, tta=tta, temperature=self.trained.temperature).accuracy


def corruption_accuracies(runner: Runner, clean: ImageSet, names: Sequence[str], severities: Sequence[int], *,
                          data_dir: str | Path, seed: int = 0, tta: str | bool = "off") -> dict[str, dict[int, float]]:
    """Accuracy on each corrupted copy of ``clean``; the copies come from the cache under ``data_dir`` or are made
    (one process per CPU) and kept there."""
    require_seed(seed)  # numpy's own refusal would be a traceback
    table: dict[str, dict[int, float]] = {name: {} for name in names}
    pairs = [(name, severity) for name in names for severity in severities]
    made = fill_cache(clean, pairs, data_dir=data_dir, seed=seed)
    for _ in tqdm(made, desc="corrupting", unit="set", disable=None):
        pass
    for name, severity in tqdm(pairs, desc="evaluating", unit="set", disable=None):
        table[name][severity] = runner.accuracy(corrupted_set(clean, name, severity, data_dir=data_dir, seed=seed),
                                                tta)
    return table


def robustness_report(clean_accuracy: float, table: dict[str, dict[int, float]], *,
                      reference: tuple[float, dict[str, dict[int, float]]] | None = None,
                      precision: str = "float32") -> dict[str, Any]:
    """The table, each corruption's mean accuracy, the mean corruption accuracy over the benchmark's corruptions
    that were run (all of them when only extra ones were), and with ``reference`` (its clean accuracy and table on
    the same sets) each corruption's CE = sum of errors / the reference's, relative CE = sum of (error - clean
    error) / the reference's, and their means over the benchmark's corruptions: mCE and relative mCE."""
    names = list(table)
    counted = [name for name in names if name in BENCHMARK] or names
    means = {name: sum(row.values()) / len(row) for name, row in table.items()}
    report: dict[str, Any] = {
        "precision": precision, "clean_accuracy": clean_accuracy,
        "accuracy": {name: {str(s): a for s, a in row.items()} for name, row in table.items()},
        "mean_accuracy": means, "mean_corruption_accuracy": sum(means[name] for name in counted) / len(counted),
        "averaged_over": counted, "families": {name: CORRUPTIONS[name][0] for name in names},
        "not_comparable_with_published": [name for name in names if name in NOT_COMPARABLE]}
    if reference is not None:
        reference_clean, reference_table = reference
        errors = {name: {s: 1 - a for s, a in row.items()} for name, row in table.items()}
        theirs = {name: {s: 1 - a for s, a in row.items()} for name, row in reference_table.items()}
        ce, relative = {}, {}
        for name in names:
            ce[name] = sum(errors[name].values()) / max(sum(theirs[name].values()), 1e-12)
            their_drop = sum(e - (1 - reference_clean) for e in theirs[name].values())
            our_drop = sum(e - (1 - clean_accuracy) for e in errors[name].values())
            relative[name] = our_drop / their_drop if abs(their_drop) > 1e-12 else None
        report.update({"reference_clean_accuracy": reference_clean, "corruption_error": ce,
                       "relative_corruption_error": relative, "mce": sum(ce[n] for n in counted) / len(counted),
                       "relative_mce": _mean([relative[n] for n in counted]),
                       "reference_accuracy": {n: {str(s): a for s, a in row.items()} for n, row in
                                              reference_table.items()}})
    return report


def _mean(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None


def format_robustness(report: dict[str, Any]) -> str:
    """A table of accuracy per corruption and severity, then the means (and the errors relative to the reference)."""
    severities = list(next(iter(report["accuracy"].values())))
    lines = [f"{'corruption':<18} " + " ".join(f"{'s' + s:>7}" for s in severities) + f" {'mean':>7}"
             + ("  CE     rel. CE" if "mce" in report else "")]
    for name, row in report["accuracy"].items():
        marks = " *" if name in report["not_comparable_with_published"] else ""
        line = f"{name + marks:<18} " + " ".join(f"{100 * row[s]:>6.2f}%" for s in severities)
        line += f" {100 * report['mean_accuracy'][name]:>6.2f}%"
        if "mce" in report:
            relative = report["relative_corruption_error"][name]
            line += f"  {100 * report['corruption_error'][name]:>5.1f}  " + (
                f"{100 * relative:>6.1f}" if relative is not None else "     -")
        lines.append(line)
    lines.append(f"clean {100 * report['clean_accuracy']:.2f}%, mean corruption accuracy "
                 f"{100 * report['mean_corruption_accuracy']:.2f}% (over {len(report['averaged_over'])} "
                 f"corruptions; {report['precision']})")
    if "mce" in report:
        relative = report["relative_mce"]
        lines.append(f"mCE {100 * report['mce']:.1f}, relative mCE "
                     f"{'-' if relative is None else f'{100 * relative:.1f}'} (reference = 100)")
    if report["not_comparable_with_published"]:
        lines.append("* generated differently from CIFAR-10-C's reference: not comparable with published figures")
    return "\n".join(lines)
