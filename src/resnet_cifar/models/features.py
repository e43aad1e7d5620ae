"""The outputs at the feature maps a model declares (``feature_info``, as timm's: after the stem and each stage)."""
from __future__ import annotations

import torch
from torch import nn


def feature_outputs(model: nn.Module, images: torch.Tensor) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor]:
    """``(name, output)`` at each declared feature map, in order, and the logits, for ``images`` in eval mode and
    without gradients; the hooks are removed afterwards."""
    found: list[tuple[str, torch.Tensor]] = []
    hooks = [model.get_submodule(info["module"]).register_forward_hook(
        lambda _m, _i, out, name=info["name"]: found.append((name, out.detach().clone())))
        for info in model.feature_info]
    try:
        with torch.no_grad():
            logits = model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
    return found, logits
