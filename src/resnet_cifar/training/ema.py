"""Exponential moving average of a model's weights, for evaluation and export (``--ema``)."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """``ema = d * ema + (1 - d) * weights`` after every step, for parameters and float buffers.

    ``d`` warms up to ``decay`` as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``): without it, a run of a few thousand steps would still
    hold a large share of the random initial weights (0.999 ** 780 = 46%).

    Written here rather than using ``torch.optim.swa_utils.AveragedModel`` because that one reads its step
    counter on the host at every update, which makes a GPU wait once per step; this one never reads the device.
    Integer buffers (BatchNorm's step count) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._source: nn.Module | None = None
        self._pairs: tuple[list[torch.Tensor], ...] = ()

    def _pairs_with(self, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
        """(averaged floats, their floats, my integer buffers, theirs), built once per source model (which
        must keep its tensors: training never moves the model after the EMA copy is made)."""
        if model is not self._source:
            mine = list(self.module.parameters()) + list(self.module.buffers())
            theirs = list(model.parameters()) + list(model.buffers())
            floats = [(a, b) for a, b in zip(mine, theirs) if a.is_floating_point()]
            others = [(a, b) for a, b in zip(mine, theirs) if not a.is_floating_point()]
            self._pairs = tuple([pair[i] for pair in group] for group in (floats, others) for i in (0, 1))
            self._source = model
        return self._pairs

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (two launches in all on a GPU)."""
        averaged, current, counters, their_counters = self._pairs_with(model)
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        if counters:
            torch._foreach_copy_(counters, their_counters)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
