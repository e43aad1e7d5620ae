"""Exponential moving average of a model's weights, for evaluation and export (``--ema``)."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """``ema = decay * ema + (1 - decay) * weights`` after every step, for parameters and float buffers.

    Written here rather than using ``torch.optim.swa_utils.AveragedModel`` because that one reads its step
    counter on the host at every update, which makes a GPU wait once per step; this one never reads the device.
    Integer buffers (BatchNorm's step count) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]]:
        mine = list(self.module.parameters()) + list(self.module.buffers())
        theirs = [t.detach() for t in list(model.parameters()) + list(model.buffers())]
        floats = [(a, b) for a, b in zip(mine, theirs) if a.is_floating_point()]
        others = [(a, b) for a, b in zip(mine, theirs) if not a.is_floating_point()]
        return [a for a, _ in floats], [b for _, b in floats], others

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        averaged, current, others = self._pairs(model)
        torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
        for mine, theirs in others:
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
