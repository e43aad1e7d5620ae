"""Command-line options generated from ``TrainConfig``'s fields, so that ``--help`` cannot drift from the code.

Each field's type gives the argparse type (``bool`` becomes ``--x/--no-x``, ``list[int]`` several integers), its
metadata (``training.config.setting``) the help text, choices and metavar.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable, Mapping

from .training.config import TrainConfig


def config_fields() -> list[dataclasses.Field]:
    """The fields of ``TrainConfig`` that are command-line options."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_config_options(parser: argparse._ActionsContainer, names: Iterable[str] | None = None, *,
                       given_only: bool = False, recipes: Mapping[str, Mapping[str, Any]] | None = None,
                       overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Add the option of each ``TrainConfig`` field in ``names`` (default: all of them) to ``parser``.

    ``given_only`` leaves options that are not given out of the parsed namespace (so they override a recipe and
    nothing else does); otherwise the field's default is the option's. ``recipes`` (name: settings) adds to each
    help what the recipes set; ``overrides`` adds argparse keywords per field, for what lives above the config
    (the recipe names).
    """
    wanted = None if names is None else set(names)
    hints = typing.get_type_hints(TrainConfig)
    for f in config_fields():
        if wanted is not None and f.name not in wanted:
            continue
        default = _default(f)
        by_recipe = {name: values[f.name] for name, values in (recipes or {}).items() if f.name in values}
        keywords = {"dest": f.name, "help": _help(f, default, by_recipe).replace("%", "%%"),
                    "default": argparse.SUPPRESS if given_only else default, **_type_keywords(hints[f.name])}
        keywords.update({k: v for k, v in f.metadata.items() if k in ("choices", "metavar")})
        keywords.update((overrides or {}).get(f.name, {}))
        parser.add_argument(option_name(f.name), **keywords)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _help(f: dataclasses.Field, default: Any, by_recipe: Mapping[str, Any]) -> str:
    """The field's help, its default and the values recipes give it: ``lr (default 0.2; recipe paper: 0.1)``."""
    shown = f.metadata["shown"] or _shown(default)
    recipes = "".join(f"; recipe {name}: {_shown(value)}" for name, value in by_recipe.items())
    return f"{f.metadata['help']} (default {shown}{recipes})"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _type_keywords(hint: Any) -> dict[str, Any]:
    """argparse's ``type``/``action``/``nargs`` for a field's type hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None: an X that may be left unset
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is list:
        return {"type": typing.get_args(hint)[0], "nargs": "+"}
    return {"type": hint}


def settings_as_options(settings: Mapping[str, Any]) -> list[str]:
    """``TrainConfig`` settings as the command-line options that give them (the inverse of the parser)."""
    options: list[str] = []
    for name, value in settings.items():
        if isinstance(value, bool):
            options.append(option_name(name) if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            options += [option_name(name), *map(str, value)]
        elif value is not None:
            options += [option_name(name), str(value)]
    return options
