"""Command line: ``resnet-cifar COMMAND ...`` (also ``python -m resnet_cifar``), one module per command group."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from ..errors import ResnetCifarError
from .deploy import add_bench_parser, add_export_parser, add_import_parser, add_serve_parser
from .evaluate import add_calibrate_parser, add_eval_parser, add_explain_parser, add_predict_parser
from .experiments import add_experiment_parser
from .models import add_models_parsers
from .sweep import add_sweep_parser
from .train import add_train_parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"resnet-cifar: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = _Parser(prog="resnet-cifar", description="Train, evaluate, inspect and serve residual networks on "
                     "CIFAR-10 and CIFAR-100.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_models_parsers(commands)
    add_train_parser(commands)
    add_sweep_parser(commands)
    add_eval_parser(commands)
    add_calibrate_parser(commands)
    add_predict_parser(commands)
    add_explain_parser(commands)
    add_bench_parser(commands)
    add_import_parser(commands)
    add_export_parser(commands)
    add_serve_parser(commands)
    add_experiment_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line on stderr and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        from ..core.threads import configure_threads

        configure_threads(getattr(args, "threads", None))
        return args.handler(args)
    except ResnetCifarError as error:
        print(f"resnet-cifar: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # the file system said no: read-only or full disk, a file where a folder must be
        where = f"{error.filename}: " if error.filename else ""
        print(f"resnet-cifar: error: {where}{error.strerror or error} (files written before are left as they "
              f"were)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where a command turns it into core.termination.Terminated
        print("resnet-cifar: interrupted", file=sys.stderr)
        return getattr(stop, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
