"""The model zoo: one ``ModelSpec`` per named network; ``create_model`` and ``list_models`` read the table."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..errors import ResnetCifarError

FAMILIES = ("residual", "plain", "baseline")  # residual nets, their shortcut-free twins, non-residual baselines


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how it is built and what is known about it.

    ``build(num_classes=..., **options)`` makes it; ``options`` are the keyword options it takes, with their
    defaults; ``paper_params`` is its parameter count in millions as the paper's table 6 prints it (CIFAR nets).
    """

    name: str
    family: str
    description: str
    build: Callable[..., nn.Module]
    options: dict[str, Any] = field(default_factory=dict)
    paper_params: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family must be one of {FAMILIES}, got {self.family!r}")


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make ``spec`` available to ``create_model`` under its name (a name can be registered once)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a model named {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(family: str | None = None) -> list[str]:
    """Names of every registered model (of ``family`` only, if given), in registration order."""
    return [name for name, spec in _REGISTRY.items() if family is None or spec.family == family]


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; an unknown name is a ``ResnetCifarError`` that suggests the closest one."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ResnetCifarError(f"unknown model {name!r}{hint}; known models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def model_options(name: str) -> list[str]:
    """The keyword options the model ``name`` accepts besides ``num_classes``."""
    return list(model_spec(name).options)


def model_description(name: str) -> str:
    return model_spec(name).description


def create_model(name: str, num_classes: int = 10, **options: object) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs; ``options`` override its defaults.

    Raises ``ResnetCifarError`` for an unknown name or an option the model does not take.
    """
    spec = model_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ResnetCifarError(f"{name} takes no option {', '.join(unknown)}: it accepts "
                               f"{', '.join(spec.options) or 'none'}")
    return spec.build(num_classes=num_classes, **{**spec.options, **options})
