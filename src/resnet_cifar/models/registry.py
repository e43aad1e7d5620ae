"""The model zoo: every named network is one registered builder; ``create_model`` and ``list_models`` read it."""
from __future__ import annotations

import difflib
import inspect
from typing import Callable

from ..errors import ResnetCifarError
from torch import nn

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register_model(builder: Builder) -> Builder:
    """Decorator: make ``builder`` available to ``create_model`` under its function name."""
    _REGISTRY[builder.__name__] = builder
    return builder


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def model_options(name: str) -> list[str]:
    """The keyword options the builder of ``name`` accepts."""
    return list(inspect.signature(_builder(name)).parameters)


def model_description(name: str) -> str:
    """The first line of the builder's docstring."""
    return (_builder(name).__doc__ or "").strip().splitlines()[0]


def create_model(name: str, num_classes: int = 10, **options: object) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs; ``options`` go to its builder.

    Raises ``ResnetCifarError`` for an unknown name or an option the model does not take.
    """
    builder = _builder(name)
    unknown = sorted(set(options) - set(model_options(name)))
    if unknown:
        raise ResnetCifarError(
            f"{name} takes no option {', '.join(unknown)}: it accepts {', '.join(model_options(name))}")
    return builder(num_classes=num_classes, **options)


def _builder(name: str) -> Builder:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ResnetCifarError(f"unknown model {name!r}{hint}; known models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
