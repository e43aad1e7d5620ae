"""``resnet-cifar models`` and ``resnet-cifar summary``: the model table, shipped weights' cards, per-layer summaries."""
from __future__ import annotations

import argparse


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_models, model_description
    from ..models.summary import count_parameters_of
    from ..models.weights import shipped_weights

    if args.pretrained:
        from ..model_card import card_table

        print(card_table({name: weights.card for name, weights in sorted(shipped_weights().items())}))
        return 0
    names = list_models()
    width = max(len(name) for name in names)
    print(f"{'model':<{width}} {'parameters':>12}  description")
    for name in names:
        params = count_parameters_of(name, num_classes=args.num_classes)
        print(f"{name:<{width}} {params:>12,}  {model_description(name)}")
    print("\nand by their settings: wrn-D-K (any Wide ResNet: depth 6n+4, width k, e.g. wrn-16-4), resnet9-wN "
          "(ResNet-9 with N channels after the prep layer, e.g. resnet9-w32), resnext29-CxDd (cardinality C, width d, "
          "e.g. resnext29-4x32d)")
    shipped = [f"{name} ({weights.dataset}, {100 * weights.test_accuracy:.2f}% test)"
               for name, weights in sorted(shipped_weights().items())]
    print(f"\nshipped weights (--pretrained NAME, load_pretrained(NAME)): {', '.join(shipped) or 'none'}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from ..models import create_model
    from ..models.summary import summary_text

    options = {"stem": args.stem} if args.stem else {}
    model = create_model(args.model, num_classes=args.num_classes, **options)
    print(summary_text(model, tuple(args.input_size), depth=args.depth))
    return 0


def add_models_parsers(commands: argparse._SubParsersAction) -> None:
    from ..models.resnet import STEM_TYPES

    models = commands.add_parser("models", help="list every model with its parameter count, or the shipped weights")
    models.add_argument("--num-classes", type=int, default=10, help="classes of the head (default 10)")
    models.add_argument("--pretrained", action="store_true", help="the shipped weights instead, with their model "
                        "cards: accuracy (clean, with TTA, under the 15 CIFAR-10-C corruptions), calibration error "
                        "before and after the temperature, parameters, MACs, CPU images/s in float32 and int8, and "
                        "the recipe, command and host that trained each")
    models.set_defaults(handler=_cmd_models)

    summary = commands.add_parser("summary", help="per-layer table, totals, MACs and the shape after each stage")
    summary.add_argument("model", help="a name from 'resnet-cifar models'")
    summary.add_argument("--input-size", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"),
                         help="input shape without the batch (default 3 32 32)")
    summary.add_argument("--num-classes", type=int, default=10, help="classes of the head (default 10)")
    summary.add_argument("--stem", choices=STEM_TYPES, help="stem type (default: the model's)")
    summary.add_argument("--depth", type=int, default=3, help="nesting depth of the table (default 3)")
    summary.set_defaults(handler=_cmd_summary)
