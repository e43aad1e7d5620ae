"""``resnet-cifar train``: a run from a recipe and the settings given, or a stopped run resumed."""
from __future__ import annotations

import argparse

from ..errors import ResnetCifarError
from .common import add_threads_option, given_settings


def _cmd_train(args: argparse.Namespace) -> int:
    from ..core.distributed import world_from_environment
    from ..training.trainer import train

    if args.resume:
        refuse_settings_with_resume(args)
        folder = train(None, resume=args.resume, quiet=args.quiet, stop_after=args.stop_after,
                       device=getattr(args, "device", None), data_dir=getattr(args, "data_dir", None))
    else:
        folder = train(config_from_args(args), quiet=args.quiet, stop_after=args.stop_after,
                       overwrite=args.overwrite)
    if not args.quiet and world_from_environment().is_main:
        print(f"run folder: {folder}  (evaluate: resnet-cifar eval {folder})")
    return 0


def refuse_settings_with_resume(args: argparse.Namespace) -> None:
    """A resumed run keeps its saved settings: name every option given that would be silently ignored."""
    given = [name for name in given_settings(args) if name not in ("device", "data_dir")]
    given += [name for name in ("stem", "shortcut", "zero_pad", "dropout") if getattr(args, name) is not None]
    given += [name for name in ("zero_init_residual", "se", "overwrite") if getattr(args, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ResnetCifarError(f"--resume continues {args.resume} with its saved settings, so {options} would be "
                               f"ignored: leave them out, or start a new run with --out (with --resume only "
                               f"--device, --data-dir, --threads, --stop-after and --quiet apply)")


def config_from_args(args: argparse.Namespace) -> object:
    """The recipe's settings, overridden by every option given on the command line."""
    from ..training.recipes import recipe_config

    options = {key: getattr(args, key) for key in ("stem", "shortcut", "zero_pad", "dropout")
               if getattr(args, key) is not None}
    options.update({key: True for key in ("zero_init_residual", "se") if getattr(args, key)})
    given = given_settings(args)
    return recipe_config(given.pop("recipe", "default"), **given, model_options=options)


def model_flags(args: argparse.Namespace) -> list[str]:
    """The model options given on the command line, as they were given."""
    flags = [f"--{key.replace('_', '-')}={getattr(args, key)}" for key in ("stem", "shortcut", "zero_pad", "dropout")
             if getattr(args, key) is not None]
    return flags + [f"--{key.replace('_', '-')}" for key in ("zero_init_residual", "se") if getattr(args, key)]


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    from ..training.recipes import RECIPES

    recipes = "; ".join(f"{name}: {text}" for name, (text, _) in RECIPES.items())
    train = commands.add_parser(
        "train", help="train a model; writes a run folder (checkpoints, weights, metrics, curves)",
        description="Train a model. Without options: the default recipe, ResNet-18 on CIFAR-10 (SGD + Nesterov, "
                    "batch 512, one-cycle, label smoothing). --recipe picks another group of settings; options "
                    "given override it.",
        epilog=f"Recipes: {recipes}.")  # an epilog is %-formatted only if it holds %(prog)
    this_call = train.add_argument_group("this call (not saved with the run)")
    this_call.add_argument("--resume", metavar="RUN", help="continue the run in this folder from last.pt with its "
                           "saved settings (only --device and --data-dir may differ)")
    this_call.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: "
                           "refuse)")
    this_call.add_argument("--stop-after", type=int, metavar="N", help="end this call after N epochs, resumable "
                           "with the same schedule")
    this_call.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    add_threads_option(this_call)
    add_run_settings(train, "settings (saved in the run folder's config.json; each given one overrides the recipe's)")
    train.set_defaults(handler=_cmd_train)


def add_run_settings(parser: argparse.ArgumentParser, title: str, leave_out: tuple[str, ...] = ()) -> None:
    """The settings of a training run (``TrainConfig``'s but ``leave_out``, each overriding the recipe's) and the
    model options."""
    from ..config_options import add_config_options, config_fields
    from ..models.blocks import SHORTCUT_TYPES, ZERO_PAD_LAYOUTS
    from ..models.resnet import STEM_TYPES
    from ..training.recipes import RECIPES

    settings = parser.add_argument_group(title)
    add_config_options(settings, [f.name for f in config_fields() if f.name not in leave_out], given_only=True,
                       recipes={name: values for name, (_, values) in RECIPES.items()},
                       overrides={"recipe": {"choices": list(RECIPES)}})
    model = parser.add_argument_group("model options (default: the model's own)")
    model.add_argument("--stem", choices=STEM_TYPES, help="model stem")
    model.add_argument("--shortcut", choices=SHORTCUT_TYPES, help="shortcut type of residual models")
    model.add_argument("--zero-pad", choices=ZERO_PAD_LAYOUTS, help="where option A shortcuts put their zero "
                       "channels: split (half before, half after the input's, as the reference CIFAR ResNets) or end")
    model.add_argument("--zero-init-residual", action="store_true", help="start every residual branch's last BN "
                       "(a pre-activation block's last conv) at zero")
    model.add_argument("--se", action="store_true", help="squeeze-and-excitation in every residual block (reduction "
                       "16; seresnet18/34/50 have it already)")
    model.add_argument("--dropout", type=float, metavar="P", help="Wide ResNets (wrn-D-K): dropout between the two "
                       "convolutions of each block (the paper's 0.3)")
