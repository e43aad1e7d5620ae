"""Every command's --help prints (argparse expands %-formats in help texts, so a stray % breaks it)."""
from __future__ import annotations

import argparse

import pytest

from resnet_cifar.cli import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser, nested sub-commands included (``("experiment", "paper")``)."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _commands(sub, (*prefix, name))
    return paths


COMMANDS = _commands(build_parser())


def test_the_parser_has_every_command() -> None:
    assert {("train",), ("eval",), ("predict",), ("bench",), ("experiment", "paper")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "resnet-cifar")
def test_help_prints_and_exits_zero(command: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: resnet-cifar") and "%%" not in out  # a percent escaped where none is expanded
