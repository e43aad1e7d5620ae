"""How far to trust the probabilities: calibration errors (expected and maximum, over equal-width confidence bins),
negative log-likelihood and Brier score, and temperature scaling (Guo et al. 2017) fitted by likelihood."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..core.batches import Predictions
from ..core.saved_model import MAX_TEMPERATURE, MIN_TEMPERATURE
from ..errors import ResnetCifarError

CALIBRATION_BINS = 15  # equal-width confidence bins, as Guo et al. 2017 and torchmetrics' default


def calibration_report(predictions: Predictions, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Expected calibration error (L1: the bins' gaps between accuracy and mean confidence, weighted by their share
    of the images), maximum calibration error (the largest gap of a non-empty bin), negative log-likelihood, Brier
    score (the squared distance of the probabilities to the one-hot label, summed over classes, averaged), and each
    bin's range, count, mean confidence and accuracy."""
    probabilities, labels = predictions.probabilities, predictions.labels
    confidence, predicted = probabilities.max(1)
    right = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    # a bin holds confidences in (lower, upper]: torch.bucketize with right=False gives that index
    place = (torch.bucketize(confidence, edges[1:-1], right=False)).clamp(0, bins - 1)
    rows, ece, mce = [], 0.0, 0.0
    for index in range(bins):
        inside = place == index
        count = int(inside.sum())
        row = {"lower": float(edges[index]), "upper": float(edges[index + 1]), "count": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"], row["accuracy"] = float(confidence[inside].mean()), float(right[inside].mean())
            gap = abs(row["accuracy"] - row["confidence"])
            ece += gap * count / len(labels)
            mce = max(mce, gap)
        rows.append(row)
    one_hot = F.one_hot(labels, probabilities.shape[1]).float()
    return {"ece": ece, "mce": mce, "nll": predictions.loss,
            "brier": float((probabilities - one_hot).pow(2).sum(1).mean()),
            "temperature": predictions.temperature, "bins": rows}


def fit_temperature(predictions: Predictions) -> float:
    """The temperature that minimises the negative log-likelihood of ``predictions`` (their logits over it), found
    by L-BFGS on its logarithm; images are the caller's validation images, never the test split."""
    if predictions.tta != "off":
        raise ResnetCifarError("fit the temperature on predictions without test-time augmentation")
    logits, labels = predictions.logits.double(), predictions.labels.clone()  # not inference-mode tensors
    log_temperature = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_temperature], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_temperature.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(nll)
    temperature = float(log_temperature.detach().exp())
    if not (math.isfinite(temperature) and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise ResnetCifarError(f"the fitted temperature {temperature:g} lies outside {MIN_TEMPERATURE:g}-"
                               f"{MAX_TEMPERATURE:g}: the model's answers on these images are degenerate")
    return temperature
