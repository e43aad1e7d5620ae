"""The model zoo: one ``ModelSpec`` per named network; ``create_model`` and ``list_models`` read the table."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from safetensors.torch import load_file
from torch import nn

from ..errors import ResnetCifarError
from .weights import CIFAR10_PREPROCESSING, Preprocessing, ShippedWeights, shipped_weights

FAMILIES = ("residual", "plain", "baseline")  # residual nets, their shortcut-free twins, non-residual baselines


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how it is built and what is known about it.

    ``build(num_classes=..., **options)`` makes it; ``options`` are the keyword options it takes, with their
    defaults; ``paper_params`` is its parameter count in millions as the paper's table 6 prints it (CIFAR nets);
    ``preprocessing`` what it takes before it is trained (a run measures its data's own mean and std, and shipped
    weights carry theirs: ``weights()``). ``paper_params`` of the other families is the count their paper prints.
    """

    name: str
    family: str
    description: str
    build: Callable[..., nn.Module]
    options: dict[str, Any] = field(default_factory=dict)
    paper_params: str | None = None
    preprocessing: Preprocessing = CIFAR10_PREPROCESSING

    def weights(self) -> list[ShippedWeights]:
        """The weights shipped for this model, by name; the first is what ``pretrained=True`` loads."""
        return [weights for _, weights in sorted(shipped_weights().items()) if weights.model == self.name]

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family must be one of {FAMILIES}, got {self.family!r}")


_REGISTRY: dict[str, ModelSpec] = {}
# Families named by their settings (wrn-28-10: any depth and width): (pattern, its form for messages, spec maker).
_PATTERNS: list[tuple[re.Pattern, str, Callable[[re.Match], ModelSpec]]] = []


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make ``spec`` available to ``create_model`` under its name (a name can be registered once)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a model named {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec
    return spec


def register_pattern(pattern: str, form: str, make: Callable[[re.Match], ModelSpec]) -> None:
    """Make every name that matches ``pattern`` whole a model: ``make(match)`` builds its spec (and raises
    ``ResnetCifarError`` for settings that make no network); ``form`` shows the pattern to users, e.g. wrn-D-K."""
    _PATTERNS.append((re.compile(pattern), form, make))


def list_models(family: str | None = None, *, pretrained: bool = False) -> list[str]:
    """Names of every registered model (of ``family`` only, if given; with shipped weights only, if
    ``pretrained``), in registration order."""
    shipped = {weights.model for weights in shipped_weights().values()} if pretrained else None
    return [name for name, spec in _REGISTRY.items()
            if (family is None or spec.family == family) and (shipped is None or name in shipped)]


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name`` (registered, or matching a registered pattern); an unknown name is a
    ``ResnetCifarError`` that suggests the closest one."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for pattern, _, make in _PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return make(match)
    close = difflib.get_close_matches(name, _REGISTRY, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    forms = f"; and any {', '.join(form for _, form, _ in _PATTERNS)}" if _PATTERNS else ""
    raise ResnetCifarError(f"unknown model {name!r}{hint}; known models: {', '.join(_REGISTRY)}{forms}")


def model_options(name: str) -> list[str]:
    """The keyword options the model ``name`` accepts besides ``num_classes``."""
    return list(model_spec(name).options)


def model_description(name: str) -> str:
    return model_spec(name).description


def create_model(name: str, num_classes: int | None = None, *, pretrained: bool | str = False,
                 **options: object) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs (default 10); ``options`` override its
    defaults. ``pretrained``: start from shipped weights (``True``: the model's first in ``model_spec(name).weights()``,
    or a weights name), whose classes and architecture options the model then takes; their preprocessing is
    ``model_spec(name).weights()[0].preprocessing``.

    Raises ``ResnetCifarError`` for an unknown name, an option the model does not take, or shipped weights that do
    not fit the classes or options asked for.
    """
    spec = model_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ResnetCifarError(f"{name} takes no option {', '.join(unknown)}: it accepts "
                               f"{', '.join(spec.options) or 'none'}")
    if not pretrained:
        return spec.build(num_classes=10 if num_classes is None else num_classes, **{**spec.options, **options})
    return _with_shipped_weights(spec, pretrained, num_classes, options)


def _with_shipped_weights(spec: ModelSpec, pretrained: bool | str, num_classes: int | None,
                          options: dict[str, object]) -> nn.Module:
    shipped = spec.weights()
    if isinstance(pretrained, str):
        shipped = [weights for weights in shipped if weights.name == pretrained]
    if not shipped:
        which = f"named {pretrained!r} " if isinstance(pretrained, str) else ""
        raise ResnetCifarError(f"no shipped weights {which}for {spec.name}: models with weights are "
                               f"{', '.join(list_models(pretrained=True)) or 'none'}")
    weights = shipped[0]
    path = weights.path()
    description = weights.description(path)
    saved = {**spec.options, **description.get("model_options", {})}
    clashing = {key: value for key, value in options.items() if saved.get(key) != value}
    if num_classes not in (None, description["num_classes"]) or clashing:
        asked = [f"num_classes {num_classes}"] if num_classes not in (None, description["num_classes"]) else []
        asked += [f"{key} {value}" for key, value in clashing.items()]
        raise ResnetCifarError(f"the shipped weights {weights.name} are a {spec.name} for {description['num_classes']} "
                               f"classes with {saved}, not {', '.join(asked)}: leave those out (or fine-tune with "
                               f"train --init-from)")
    model = spec.build(num_classes=description["num_classes"], **saved)
    model.load_state_dict(load_file(str(path)))
    return model
