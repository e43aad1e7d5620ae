"""What a model looked at: class-activation maps (Grad-CAM, Grad-CAM++), input-gradient saliency and integrated
gradients (captum's, the optional ``explain`` extra), for any network of the zoo.

Written with PyTorch hooks in a few dozen lines rather than taking an OpenCV-sized dependency: a forward hook on
the chosen layer passes on a copy of its output and keeps it, so in-place ReLUs after the layer cannot change it;
the score's gradient is taken with respect to that copy (``torch.autograd.grad``: no module backward hooks, which
in-place operations break, and no ``.grad`` left on the parameters). The hook is removed when the call ends.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResnetCifarError, is_decimal
from ..models.summary import stage_shapes

METHODS = ("gradcam", "gradcam++", "saliency", "integrated-gradients")
LAYER_METHODS = ("gradcam", "gradcam++")
# The default layer is the deepest feature map at least this many pixels on a side for the model's input: a
# ResNet's last stage at 32x32 is 4x4, too coarse to point at an object (BENCHMARKS.md, "Explanations").
MIN_DEFAULT_SIDE = 8
IG_STEPS = 32
EXPLAIN_BATCH = 64  # images the commands decode and explain at once: memory stays flat in the number of images


@dataclass
class Explanation:
    """Maps for each image and each explained class: ``maps`` (N, K, H, W) in [0, 1] at the input's size,
    ``layer_maps`` at the layer's own size before upsampling (Grad-CAM methods; else the same as ``maps``),
    ``classes`` and ``probabilities`` (N, K) of the explained classes."""

    maps: torch.Tensor
    layer_maps: torch.Tensor
    classes: torch.Tensor
    probabilities: torch.Tensor
    method: str
    layer: str | None


def feature_layers(model: nn.Module) -> dict[str, str]:
    """The layers a map can be taken at: ``feature_info`` name -> module path."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ResnetCifarError(f"{type(model).__name__} declares no feature maps (feature_info): explanations need "
                               f"a model of the zoo")
    return {entry["name"]: entry["module"] for entry in info}


def feature_sizes(model: nn.Module, input_size: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Each feature layer's (height, width) for an input of ``input_size`` (C, H, W), from one forward pass."""
    feature_layers(model)  # a model without feature maps is refused in words
    return {name: shape[-2:] for name, shape in stage_shapes(model, tuple(input_size))[:-1]}


def default_layer(model: nn.Module, input_size: Sequence[int]) -> str:
    """The deepest feature layer whose map is at least ``MIN_DEFAULT_SIDE`` on its shorter side (else the first)."""
    sizes = feature_sizes(model, input_size)
    fine = [name for name, size in sizes.items() if min(size) >= MIN_DEFAULT_SIDE]
    return fine[-1] if fine else next(iter(sizes))


def check_layer(model: nn.Module, layer: str) -> str:
    """The module path of feature layer ``layer``; an unknown name lists the valid ones."""
    layers = feature_layers(model)
    if layer not in layers:
        raise ResnetCifarError(f"no layer {layer!r} in this model: choose one of {', '.join(layers)}")
    return layers[layer]


def chosen_layer(model: nn.Module, method: str, layer: str | None, input_size: Sequence[int]) -> str | None:
    """The feature layer ``method`` explains: ``layer`` checked, ``default_layer`` where None; None for the methods
    that explain the input pixels. An unknown method or layer (the empty name too) is refused in one line."""
    if method not in METHODS:
        raise ResnetCifarError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method not in LAYER_METHODS:
        if layer is not None:
            raise ResnetCifarError(f"--layer applies to {' and '.join(LAYER_METHODS)}; {method} explains the input "
                                   f"pixels")
        return None
    layer = default_layer(model, input_size) if layer is None else layer
    check_layer(model, layer)
    return layer


def target_classes(target: str, class_names: list[str], count: int) -> torch.Tensor | None:
    """``--target``: ``top`` (None: the most probable classes), a class name or a class number, for every image."""
    if target == "top":
        return None
    if target in class_names:
        index = class_names.index(target)
    elif is_decimal(target) and int(target) < len(class_names):
        index = int(target)
    else:
        shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
        raise ResnetCifarError(f"--target {target!r} is not a class of this model: give top, a class name "
                               f"({shown}) or a number 0..{len(class_names) - 1}")
    return torch.full((count, 1), index, dtype=torch.long)


@contextlib.contextmanager
def _recorded(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """While inside: the module's output of the last forward pass (``activation``)."""
    seen: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        seen["activation"] = output.clone()  # what flows on is a copy: an in-place op after the layer cannot touch it
        return seen["activation"]

    hook = module.register_forward_hook(keep)
    try:
        yield seen
    finally:
        hook.remove()


def _normalised(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] by its maximum; an all-zero map stays zero (never NaN)."""
    peak = maps.flatten(2).amax(2)[..., None, None]
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps))


def _cam_weights(method: str, activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Per-channel weights (N, C): Grad-CAM's mean gradient, or Grad-CAM++'s (Chattopadhyay et al. 2018, the
    closed form for an exponential score) positive gradients weighted by alpha."""
    if method == "gradcam":
        return gradient.mean((2, 3))
    squared, cubed = gradient.pow(2), gradient.pow(3)
    total = activation.sum((2, 3), keepdim=True)
    alpha = squared / (2 * squared + total * cubed).where(gradient != 0, torch.ones_like(gradient))
    return (alpha.where(gradient != 0, torch.zeros_like(alpha)) * F.relu(gradient)).sum((2, 3))


def explain(model: nn.Module, images: torch.Tensor, *, method: str = "gradcam", layer: str | None = None,
            targets: torch.Tensor | None = None, top_k: int = 1, temperature: float = 1.0) -> Explanation:
    """Maps of ``images`` (normalised float (N, C, H, W), as the model takes them) for the classes in ``targets``
    ((N, K) class indices), or the model's ``top_k`` most probable classes. ``layer``: a ``feature_info`` name
    (Grad-CAM methods; default ``default_layer``). The model is left as it was: eval mode, no hooks, no gradients
    kept in its parameters. ``temperature``: the model's (``TrainedModel.temperature``), for the probabilities."""
    layer = chosen_layer(model, method, layer, images.shape[1:])
    model.eval()
    if method == "integrated-gradients":
        with torch.no_grad():
            logits = model(images)
        targets = _targets(logits, targets, top_k)
        raw = [_integrated_gradients(model, images, targets[:, k]) for k in range(targets.shape[1])]
    else:
        logits, targets, raw = _gradient_maps(model, images, targets, top_k, method, layer)
    maps = [F.interpolate(small[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            if small.shape[-2:] != images.shape[-2:] else small for small in raw]
    stacked = _normalised(torch.stack(maps, 1).clamp_min(0))
    probabilities = F.softmax(logits.detach().float() / temperature, dim=1)
    return Explanation(stacked.detach().cpu(), torch.stack(raw, 1).detach().cpu(), targets.cpu(),
                       probabilities.gather(1, targets).cpu(), method, layer)


def _targets(logits: torch.Tensor, targets: torch.Tensor | None, top_k: int) -> torch.Tensor:
    """``targets`` on the logits' device, or the ``top_k`` most probable classes."""
    if targets is not None:
        return targets.to(logits.device)
    if not 1 <= top_k <= logits.shape[1]:
        raise ResnetCifarError(f"--top-k must lie in 1..{logits.shape[1]}, got {top_k}")
    return logits.topk(top_k, dim=1).indices


def _gradient_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None, top_k: int, method: str,
                   layer: str | None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Saliency or Grad-CAM(++) maps (N, h, w) for each target column, all from one forward pass; returns the
    logits, the targets and the maps."""
    with contextlib.ExitStack() as stack, torch.enable_grad():
        if method == "saliency":
            inputs = images.detach().clone().requires_grad_(True)
            logits, seen = model(inputs), {"activation": inputs}
        else:
            seen = stack.enter_context(_recorded(model.get_submodule(check_layer(model, layer))))
            logits = model(images.detach())
        targets = _targets(logits, targets, top_k)
        maps = []
        for k in range(targets.shape[1]):
            score = logits.gather(1, targets[:, k, None]).sum()
            (gradient,) = torch.autograd.grad(score, seen["activation"], retain_graph=k + 1 < targets.shape[1])
            if method == "saliency":
                maps.append(gradient.abs().amax(1))
            else:
                activation = seen["activation"].detach()
                weights = _cam_weights(method, activation, gradient)
                maps.append(F.relu((weights[:, :, None, None] * activation).sum(1)))
    return logits, targets, maps


def _integrated_gradients(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    try:
        from captum.attr import IntegratedGradients
    except ImportError as error:
        raise ResnetCifarError(f"integrated gradients come from captum: pip install 'resnet-cifar[explain]' "
                               f"({error})") from None
    with torch.enable_grad():
        attributions = IntegratedGradients(model).attribute(images.detach(), target=target, n_steps=IG_STEPS,
                                                            internal_batch_size=len(images) * 8)
    return attributions.abs().amax(1)
