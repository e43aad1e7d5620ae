"""Command line: ``resnet-cifar COMMAND ...`` (also ``python -m resnet_cifar``)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import ResnetCifarError

Handler = Callable[[argparse.Namespace], int]


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import create_model, list_models, model_description
    from .models.summary import count_parameters

    print(f"{'model':<12} {'parameters':>12}  description")
    for name in list_models():
        params = count_parameters(create_model(name, num_classes=args.num_classes))
        print(f"{name:<12} {params:>12,}  {model_description(name)}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from .models import create_model
    from .models.summary import summary_text

    options = {"stem": args.stem} if args.stem else {}
    model = create_model(args.model, num_classes=args.num_classes, **options)
    print(summary_text(model, tuple(args.input_size), depth=args.depth))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="resnet-cifar", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list every model with its parameter count")
    models.add_argument("--num-classes", type=int, default=10, help="classes of the head (default 10)")
    models.set_defaults(handler=_cmd_models)

    summary = commands.add_parser("summary", help="per-layer table, totals, MACs and the shape after each stage")
    summary.add_argument("model", help="a name from 'resnet-cifar models'")
    summary.add_argument("--input-size", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"),
                         help="input shape without the batch (default 3 32 32)")
    summary.add_argument("--num-classes", type=int, default=10, help="classes of the head (default 10)")
    summary.add_argument("--stem", choices=["cifar", "imagenet"], help="stem type (default: the model's)")
    summary.add_argument("--depth", type=int, default=3, help="nesting depth of the table (default 3)")
    summary.set_defaults(handler=_cmd_summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line on stderr and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ResnetCifarError as error:
        print(f"resnet-cifar: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet-cifar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
