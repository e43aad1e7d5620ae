"""The train command's options are generated from TrainConfig: one option per field, its help, every value reaches
the config."""
from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from resnet_cifar.cli import build_parser
from resnet_cifar.cli.train import config_from_args
from resnet_cifar.config_options import config_fields, option_name
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.recipes import RECIPES


def _subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _actions_by_dest(parser: argparse.ArgumentParser) -> dict[str, list[argparse.Action]]:
    found: dict[str, list[argparse.Action]] = {}
    for action in parser._actions:
        found.setdefault(action.dest, []).append(action)
    return found


def test_every_setting_has_exactly_one_train_option_named_after_it() -> None:
    actions = _actions_by_dest(_subparser("train"))
    for f in config_fields():
        assert len(actions.get(f.name, [])) == 1, f.name
        assert actions[f.name][0].option_strings[0] == option_name(f.name)
    assert "model_options" not in actions  # built from --stem, --shortcut, --zero-init-residual
    assert {"stem", "shortcut", "zero_pad", "zero_init_residual"} <= set(actions)


def test_each_option_help_is_its_field_help_with_the_default_and_recipe_values() -> None:
    actions = _actions_by_dest(_subparser("train"))
    for f in config_fields():
        text = actions[f.name][0].help.replace("%%", "%")
        assert text.startswith(f.metadata["help"] + " (default "), f.name
        for recipe, (_, values) in RECIPES.items():
            assert (f"recipe {recipe}:" in text) == (f.name in values), (f.name, recipe)
    assert "(default 0.2;" in actions["lr"][0].help
    assert "recipe paper: 91 137" in actions["milestones"][0].help


def _other_value(f: dataclasses.Field, hint: typing.Any) -> str | list[str]:
    """A command-line value for ``f`` that differs from its default and passes validation with the others."""
    default = TrainConfig.__dataclass_fields__[f.name]
    default = default.default_factory() if default.default_factory is not dataclasses.MISSING else default.default
    special = {"model": "resnet20", "recipe": "fast", "epochs": "40", "milestones": ["2", "5"]}
    if f.name in special:
        return special[f.name]
    if "choices" in f.metadata:
        return next(c for c in f.metadata["choices"] if c != default)
    if hint in (bool, bool | None):
        return [] if default is not True else None
    if hint is int:
        return str(default + 1)
    if hint in (float, float | None):
        return str((default or 1.0) / 2)
    return f"other-{default}"


def test_every_option_given_reaches_the_config() -> None:
    hints = typing.get_type_hints(TrainConfig)
    argv = ["train"]
    for f in config_fields():
        value = _other_value(f, hints[f.name])
        name = option_name(f.name)
        if value is None:
            argv.append("--no-" + name[2:])
        elif value == []:
            argv.append(name)
        else:
            argv += [name, *value] if isinstance(value, list) else [name, value]
    # --zero-init-residual would clash with --no-train-norm-scale (a scale held at 0): --se stands in for a switch
    args = build_parser().parse_args(argv + ["--stem", "imagenet", "--zero-pad", "end", "--se"])
    config = config_from_args(args)
    defaults = TrainConfig()
    for f in config_fields():
        assert getattr(config, f.name) != getattr(defaults, f.name), f.name
    assert config.model_options == {"stem": "imagenet", "zero_pad": "end", "se": True}
    assert config.milestones == [2, 5] and config.channels_last is True and config.warmup_epochs == 0.5


def test_no_option_gives_the_default_recipe_and_a_recipe_is_overridden_only_where_given() -> None:
    assert config_from_args(build_parser().parse_args(["train"])) == TrainConfig()
    fast = config_from_args(build_parser().parse_args(["train", "--recipe", "fast", "--lr", "0.3"]))
    assert (fast.epochs, fast.channels_last, fast.lr, fast.recipe) == (10, True, 0.3, "fast")


@pytest.mark.parametrize("experiment", ["degradation", "paper", "compare"])
def test_experiment_options_default_to_the_config_defaults(experiment: str) -> None:
    parser = _subparser("experiment", experiment)
    args = parser.parse_args(["resnet20"] if experiment == "compare" else [])
    defaults = TrainConfig()
    for name in ("dataset", "data_dir", "download", "train_subset", "seed", "device", "amp", "channels_last"):
        assert getattr(args, name) == getattr(defaults, name), name
