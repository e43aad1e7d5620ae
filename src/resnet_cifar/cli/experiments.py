"""``resnet-cifar experiment degradation|paper|compare``: several runs in one folder and their tables and figures."""
from __future__ import annotations

import argparse

from ..errors import ResnetCifarError
from .common import add_threads_option


# The ``TrainConfig`` settings that every run of an experiment shares.
EXPERIMENT_SETTINGS = ("dataset", "data_dir", "download", "train_subset", "seed", "device", "amp", "channels_last",
                       "compile", "compile_mode")


def experiment_settings(args: argparse.Namespace) -> dict:
    """The shared settings as given (or defaulted) on the command line."""
    return {name: getattr(args, name) for name in EXPERIMENT_SETTINGS}


def _cmd_degradation(args: argparse.Namespace) -> int:
    from ..experiments.degradation import degradation

    degradation(args.depths, epochs=args.epochs, out=args.out, quiet=args.quiet, jobs=args.jobs,
                val_split=args.val_split, **experiment_settings(args))
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from ..experiments.paper import paper

    paper(args.depths, epochs=args.epochs, runs=args.runs, out=args.out, quiet=args.quiet, jobs=args.jobs,
          val_split=args.val_split, **experiment_settings(args))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..experiments.compare import compare, compare_recipes

    settings = experiment_settings(args)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    recipes = args.recipe or ["default"]
    if len(recipes) == 1:
        from ..inference.robustness import parse_severities

        compare(args.models, recipe=recipes[0], out=args.out, quiet=args.quiet, corruptions=args.corruptions,
                severities=parse_severities(args.severities), **settings)
    elif args.corruptions is not None:
        raise ResnetCifarError("--corruptions adds columns to a comparison of models: give one recipe")
    elif len(args.models) != 1:
        raise ResnetCifarError(f"several recipes are compared on one model, got {len(args.models)}: give one model")
    else:
        compare_recipes(args.models[0], recipes, out=args.out, quiet=args.quiet, **settings)
    return 0


def _experiment_options(default_out: str, default_epochs: int | None) -> argparse.ArgumentParser:
    """Options shared by the experiments: data, length, seed, device, output folder."""
    from ..config_options import add_config_options

    shared = argparse.ArgumentParser(add_help=False)
    add_config_options(shared, EXPERIMENT_SETTINGS)
    shared.add_argument("--epochs", type=int, default=default_epochs,
                        help=f"epochs of every run (default {default_epochs or 'that of the recipe'})")
    shared.add_argument("--out", default=default_out, help=f"experiment folder, one run folder per model inside; an "
                        f"unfinished experiment resumes where it stopped (default {default_out})")
    shared.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    add_threads_option(shared)
    return shared


def _paper_options() -> argparse.ArgumentParser:
    """Options of the experiments that follow the paper: its validation split and runs in parallel."""
    from ..experiments.paper_schedule import PAPER_VAL_SPLIT

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--val-split", type=int, default=PAPER_VAL_SPLIT, metavar="N", help=f"hold out N training "
                        f"images, as the paper's 45k/5k split does (default {PAPER_VAL_SPLIT}; 0: train on all)")
    shared.add_argument("--jobs", type=int, default=1, metavar="N", help="train N runs at once, one process each "
                        "(small nets leave a GPU idle one at a time); the CPU threads are split between them "
                        "(default 1)")
    return shared


def add_experiment_parser(commands: argparse._SubParsersAction) -> None:
    from ..experiments.paper_schedule import PAPER_EPOCHS
    from ..training.recipes import RECIPES

    experiment = commands.add_parser("experiment", help="multi-run experiments: degradation, paper, compare")
    kinds = experiment.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    degradation = kinds.add_parser(
        "degradation", parents=[_experiment_options("experiments/paper", PAPER_EPOCHS), _paper_options()],
        help="plain against residual nets of growing depth (the paper's figure 6)",
        description="Train plain-D and ResNet-D for each depth D with the paper's recipe (SGD 0.1, momentum 0.9, "
                    "weight decay 1e-4, batch 128, 5,000 training images held out, lr /10 at 50% and 75% of the "
                    f"{PAPER_EPOCHS} epochs) and one seed; draw training and test error against training steps "
                    "(plain left, residual right: degradation.png) and tabulate final errors (degradation.md). "
                    "The ResNet runs are shared with 'experiment paper' in the same --out. A GPU job at full "
                    "length; --epochs 25 --train-subset 10000 shows the effect on a CPU in hours.")
    degradation.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56],
                             help="depths among 20 32 44 56 110 (default 20 32 44 56)")
    degradation.set_defaults(handler=_cmd_degradation)

    paper = kinds.add_parser(
        "paper", parents=[_experiment_options("experiments/paper", PAPER_EPOCHS), _paper_options()],
        help="the paper's CIFAR-10 table: ResNet-20/32/44/56/110, our error next to the published one",
        description="Train ResNet-20/32/44/56/110 with the paper's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, "
                    "batch 128, crop + flip, 45k/5k train/validation split, lr /10 at 32k and 48k of 64k steps = "
                    f"{PAPER_EPOCHS} epochs) and write one table (paper.md) with the paper's test error, that of "
                    "published weights on the same data and ours, and the error curves (paper.png). A GPU job at "
                    "full length.")
    paper.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56, 110],
                       help="depths among 20 32 44 56 110 1202 (default 20 32 44 56 110)")
    paper.add_argument("--runs", type=int, default=1, metavar="K", help="seeds per depth, from --seed on: the table "
                       "gives the mean error and its spread (default 1)")
    paper.set_defaults(handler=_cmd_paper)

    compare = kinds.add_parser(
        "compare", parents=[_experiment_options("experiments/compare", None)],
        help="several models with one recipe, or one model with several recipes, side by side",
        description="Train every model given with one recipe and the same seed, then print and plot test accuracy, "
                    "parameters, multiply-accumulates and training time side by side. Non-residual baselines "
                    "(lenet5, vgg11/13/16/19) are in 'resnet-cifar models'. With --recipe given several times: one "
                    "model trained with each recipe, test accuracy against wall-clock minutes, and the time each "
                    "took to reach the first recipe's final accuracy.")
    compare.add_argument("models", nargs="+", help="model names from 'resnet-cifar models'")
    compare.add_argument("--recipe", action="append", choices=list(RECIPES), help="the recipe of every run "
                         "(default: default); repeat it to compare recipes on one model, the first as the reference")
    compare.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    compare.add_argument("--corruptions", nargs="*", metavar="NAME", help="also each model's mean accuracy on the "
                         "test split corrupted as CIFAR-10-C (all, the default, or names: see 'eval --help') and its "
                         "relative mCE against the first model")
    compare.add_argument("--severities", default="1-5", help="corruption severities: 1-5 (default), 3 or 1,3,5")
    compare.set_defaults(handler=_cmd_compare)
