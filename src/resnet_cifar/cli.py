"""Command line: ``resnet-cifar COMMAND ...`` (also ``python -m resnet_cifar``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, NoReturn, Sequence

from .errors import ResnetCifarError

Handler = Callable[[argparse.Namespace], int]


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``, for every command that computes on the CPU (applied in ``main``)."""
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch (default: PyTorch's "
                        "choice capped at the CPUs this process may use, container quotas included; OMP_NUM_THREADS, "
                        "if set, is taken as given: torchrun sets it to 1 per process when it starts several, so "
                        "on CPUs give N = CPUs / processes)")


def _cmd_models(args: argparse.Namespace) -> int:
    from .engine.pretrained import pretrained_manifest
    from .models import create_model, list_models, model_description
    from .models.summary import count_parameters

    print(f"{'model':<12} {'parameters':>12}  description")
    for name in list_models():
        params = count_parameters(create_model(name, num_classes=args.num_classes))
        print(f"{name:<12} {params:>12,}  {model_description(name)}")
    shipped = [f"{name} ({entry['dataset']}, {100 * entry['test_accuracy']:.2f}% test)"
               for name, entry in sorted(pretrained_manifest().items())]
    print(f"\nshipped weights (--pretrained NAME, load_pretrained(NAME)): {', '.join(shipped) or 'none'}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from .models import create_model
    from .models.summary import summary_text

    options = {"stem": args.stem} if args.stem else {}
    model = create_model(args.model, num_classes=args.num_classes, **options)
    print(summary_text(model, tuple(args.input_size), depth=args.depth))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine.distributed import world_from_environment
    from .engine.trainer import train

    if args.resume:
        refuse_settings_with_resume(args)
        folder = train(None, resume=args.resume, quiet=args.quiet, stop_after=args.stop_after,
                       device=getattr(args, "device", None))
    else:
        folder = train(_config_from_args(args), quiet=args.quiet, stop_after=args.stop_after,
                       overwrite=args.overwrite)
    if not args.quiet and world_from_environment().is_main:
        print(f"run folder: {folder}  (evaluate: resnet-cifar eval {folder})")
    return 0


def refuse_settings_with_resume(args: argparse.Namespace) -> None:
    """A resumed run keeps its saved settings: name every option given that would be silently ignored."""
    given = [name for name in _config_fields() if hasattr(args, name) and name != "device"]
    given += [name for name in ("stem", "shortcut") if getattr(args, name) is not None]
    given += [name for name in ("zero_init_residual", "overwrite") if getattr(args, name)]
    if args.recipe != "default":
        given.append("recipe")
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ResnetCifarError(f"--resume continues {args.resume} with its saved settings, so {options} would be "
                               f"ignored: leave them out, or start a new run with --out (with --resume only "
                               f"--device, --threads, --stop-after and --quiet apply)")


def _config_from_args(args: argparse.Namespace) -> object:
    """The recipe's settings, overridden by every option given on the command line."""
    from .engine.recipes import recipe_config

    options = {key: value for key, value in (("stem", args.stem), ("shortcut", args.shortcut)) if value is not None}
    if args.zero_init_residual:
        options["zero_init_residual"] = True
    given = {name: getattr(args, name) for name in _config_fields() if hasattr(args, name)}
    return recipe_config(args.recipe, **given, model_options=options)


def _config_fields() -> list[str]:
    from .engine.config import TrainConfig

    return [name for name in TrainConfig.__dataclass_fields__ if name not in ("model_options", "recipe")]


def _cmd_eval(args: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate, format_per_class
    from .engine.pretrained import pretrained_weights

    if (args.source is None) == (args.pretrained is None):
        raise ResnetCifarError("give either a run folder / weights file or --pretrained NAME")
    source, out = args.source, args.out
    if args.pretrained:  # shipped weights: results go to ./eval-NAME, not into the installed package
        source, out = pretrained_weights(args.pretrained), args.out or f"eval-{args.pretrained}"
    results = evaluate(source, dataset=args.dataset, data_dir=args.data_dir, split=args.split, tta=args.tta,
                       out_dir=out, device=args.device, download=args.download, int8=args.int8)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_per_class(results))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .engine.predict import format_predictions, predict
    from .engine.pretrained import pretrained_weights

    if args.pretrained:
        source, inputs = pretrained_weights(args.pretrained), args.paths
    elif len(args.paths) < 2:
        raise ResnetCifarError("give a run folder / weights file (or --pretrained NAME), then images to classify")
    else:
        source, inputs = args.paths[0], args.paths[1:]
    results = predict(source, inputs, top_k=args.top_k, device=args.device, timeout=args.timeout)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_report, format_report, run_bench
    from .engine.config import require_positive_int
    from .engine.device import resolve_device
    from .engine.int8 import INSTALL_HINT, int8_available

    for size in args.batch_sizes:
        require_positive_int("batch_sizes", size)
    require_positive_int("steps", args.steps)
    if args.warmup < 0:
        raise ResnetCifarError(f"--warmup must be an integer >= 0, got {args.warmup}")
    device = resolve_device(args.device)
    if device.type == "cpu" and not int8_available():
        print(f"note: no int8 inference rows; {INSTALL_HINT}", file=sys.stderr)
    rows = run_bench(args.models, args.batch_sizes, device, steps=args.steps, warmup=args.warmup,
                     compile_too=args.compile)
    report = bench_report(rows, device)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="training, inference and data-pipeline images/s on this device, "
                                "with the TFLOP/s they amount to and their share of its peak")
    bench.add_argument("--models", nargs="+", default=["resnet18", "resnet20"], help="(default resnet18 resnet20)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[128], help="(default 128)")
    bench.add_argument("--steps", type=int, default=5, help="timed steps per row (default 5)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    bench.add_argument("--compile", action="store_true", help="also time each task with torch.compile")
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="(default auto)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_threads_option(bench)
    bench.set_defaults(handler=_cmd_bench)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    from .data import DATASETS
    from .engine.config import AMP_MODES, COMPILE_MODES, DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig
    from .engine.recipes import RECIPES

    d = TrainConfig()
    train = commands.add_parser(
        "train", help="train a model; writes a run folder (checkpoints, weights, metrics, curves)",
        description="Train a model. The defaults are a ResNet-18 recipe for CIFAR-10 on one GPU (SGD + Nesterov, "
                    "batch 512, one-cycle, label smoothing; its accuracy is not measured yet). --recipe picks "
                    "another group of settings (the seeds' runs, the paper's schedule); options given override it.")
    add = train.add_argument
    add("--recipe", default="default", choices=list(RECIPES), help="a named group of settings that the other "
        "options override: " + "; ".join(f"{name}: {text}" for name, (text, _) in RECIPES.items()).replace("%", "%%"))
    add("--model", default=d.model, help=f"model name from 'resnet-cifar models' (default {d.model})")
    add("--dataset", default=d.dataset, choices=DATASETS, help=f"dataset (default {d.dataset})")
    add("--data-dir", default=d.data_dir, help="folder holding the dataset (default ./data)")
    add("--download", action=argparse.BooleanOptionalAction, default=d.download,
        help="fetch the official CIFAR archive when the folder is missing (default on)")
    add("--out", default=d.out, help="run folder (default runs/MODEL-DATASET-TIME)")
    add("--resume", metavar="RUN", help="continue the run in this folder from last.pt (its settings are reused)")
    add("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")
    add("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
        help="also save last.pt every N training steps, so a crash loses at most N steps (default 0: per epoch)")
    add("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    add("--stop-after", type=int, metavar="N", help="end this call after N epochs, resumable with the same schedule")
    add("--batch-size", type=int, default=d.batch_size, help=f"training batch size; with torchrun, of all processes "
        f"together (default {d.batch_size})")
    add("--optimizer", default=d.optimizer, choices=OPTIMIZERS, help=f"optimizer (default {d.optimizer})")
    add("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    add("--momentum", type=float, default=d.momentum, help=f"SGD momentum (default {d.momentum})")
    add("--weight-decay", type=float, default=d.weight_decay, help=f"weight decay (default {d.weight_decay})")
    add("--nesterov", action=argparse.BooleanOptionalAction, default=d.nesterov, help="Nesterov momentum for SGD")
    add("--schedule", default=d.schedule, choices=SCHEDULES, help=f"learning-rate schedule (default {d.schedule})")
    add("--warmup-epochs", type=float, default=d.warmup_epochs,
        help="linear warm-up (default: 15%% of the run for onecycle, else 0; not used by plateau)")
    add("--milestones", type=int, nargs="+", default=d.milestones, help="epochs at which multistep multiplies "
        "the learning rate by --gamma")
    add("--gamma", type=float, default=d.gamma, help=f"multistep/plateau factor (default {d.gamma})")
    add("--patience", type=int, default=d.patience, help=f"plateau: epochs without improvement (default {d.patience})")
    add("--plateau-threshold", type=float, default=d.plateau_threshold, help="plateau: the relative fall of the "
        f"loss that counts as an improvement (default {d.plateau_threshold:g})")
    add("--label-smoothing", type=float, default=d.label_smoothing, help=f"(default {d.label_smoothing})")
    add("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
        help="random crop and horizontal flip (default on)")
    add("--crop-padding", type=int, default=d.crop_padding, help=f"padding of the random crop (default {d.crop_padding})")
    add("--cutout", type=int, default=d.cutout, help="side of the cutout square, 0 = off (default 0)")
    add("--val-split", type=int, default=d.val_split, help="hold out N training images (class-balanced) to choose "
        "best.pt; 0 = none, only last.pt (default 0)")
    add("--train-subset", type=int, default=d.train_subset, metavar="N", help="train on N of the training images "
        "(class-balanced, chosen by --seed) for quick runs; 0 = all (default 0)")
    add("--amp", default=d.amp, choices=AMP_MODES, help="mixed precision (default auto: bf16 on GPUs that have it "
        "natively, else fp16; bf16 on CPUs with native bf16 (AVX-512 BF16, AMX); off elsewhere)")
    add("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last,
        help="channels-last memory format (default: on for CUDA GPUs, off on CPUs; on in the fast recipe)")
    add("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
        help="torch.compile the model (default off; on in the fast recipe)")
    add("--compile-mode", default=d.compile_mode, choices=COMPILE_MODES, help="with --compile: reduce-overhead "
        "replays CUDA graphs (fewer kernel launches per step), max-autotune also searches for faster kernels "
        "(long compilation) (default default)")
    add("--sync-bn", action="store_true", help="with several processes (torchrun), BatchNorm statistics over the "
        "batches of all of them")
    add("--ema", action="store_true", help="evaluate and export an exponential moving average of the weights")
    add("--ema-decay", type=float, default=d.ema_decay, help=f"(default {d.ema_decay})")
    add("--seed", type=int, default=d.seed, help=f"seed of initialisation, data order and augmentation (default {d.seed})")
    add("--deterministic", action="store_true", help="deterministic kernels only: bit-reproducible CPU runs; on CUDA "
        "turns off cuDNN autotuning (slower)")
    add("--skip-nonfinite", action="store_true", help="skip batches whose loss is NaN/inf instead of stopping")
    add("--device", default=d.device, choices=DEVICES, help="device (default auto: cuda, then mps, then cpu)")
    _add_threads_option(train)
    add("--image-size", type=int, default=d.image_size, help="side images are resized to, --dataset folder only")
    add("--stem", choices=["cifar", "imagenet"], help="model stem (default: the model's)")
    add("--shortcut", choices=["A", "B"], help="shortcut type of residual models (default: the model's)")
    add("--zero-init-residual", action="store_true", help="start every residual branch's last BN at zero")
    add("--quiet", action="store_true", help="no progress bar or epoch lines")
    # Only options given explicitly reach the config, so that they override the recipe and nothing else does.
    fields = set(_config_fields())
    for action in train._actions:
        if action.dest in fields:
            action.default = argparse.SUPPRESS
    train.set_defaults(handler=_cmd_train)


def _pretrained_names() -> str:
    from .engine.pretrained import list_pretrained

    try:
        return ", ".join(list_pretrained()) or "none shipped yet"
    except ResnetCifarError:  # a damaged manifest must not break --help or other commands; using one says why
        return "their list is unreadable"


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    from .data import DATASETS

    evaluate = commands.add_parser("eval", help="accuracy, per-class table, confusion matrix and image grids")
    evaluate.add_argument("source", nargs="?", help="run folder, model.safetensors or .pt checkpoint")
    evaluate.add_argument("--pretrained", metavar="NAME", help=f"evaluate shipped weights instead of SOURCE "
                          f"({_pretrained_names()}); figures go to ./eval-NAME, data to ./data unless given")
    evaluate.add_argument("--dataset", choices=DATASETS, help="dataset (default: the one it was trained on)")
    evaluate.add_argument("--data-dir", help="dataset folder (default: the one it was trained with)")
    evaluate.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                          help="fetch the official CIFAR archive when the folder is missing (default on)")
    evaluate.add_argument("--split", default="test", choices=["train", "test"], help="split (default test)")
    evaluate.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    evaluate.add_argument("--int8", action="store_true", help="quantise to int8 first, calibrated on training "
                          "images (CPU only; needs torchao)")
    evaluate.add_argument("--out", help="folder for eval.json and the figures (default: beside the weights)")
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="(default auto)")
    evaluate.add_argument("--json", action="store_true", help="also print the results as JSON")
    _add_threads_option(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)


def _add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="top-k classes of image files, folders or http(s) URLs",
                                  usage="%(prog)s [options] {SOURCE | --pretrained NAME} PATH_OR_URL [PATH_OR_URL ...]")
    predict.add_argument("paths", nargs="+", metavar="SOURCE PATH_OR_URL", help="run folder, model.safetensors or "
                         ".pt checkpoint (not with --pretrained), then image files, folders, http(s) URLs")
    predict.add_argument("--pretrained", metavar="NAME", help=f"use shipped weights instead of SOURCE "
                         f"({_pretrained_names()})")
    predict.add_argument("--top-k", type=int, default=5, help="classes shown per image (default 5)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="(default auto)")
    predict.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a URL (default 10)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_threads_option(predict)
    predict.set_defaults(handler=_cmd_predict)


def _experiment_settings(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` settings that every run of an experiment shares."""
    names = ("dataset", "data_dir", "download", "train_subset", "seed", "device", "amp", "channels_last")
    return {name: getattr(args, name) for name in names}


def _cmd_degradation(args: argparse.Namespace) -> int:
    from .experiments.degradation import degradation

    degradation(args.depths, epochs=args.epochs, out=args.out, quiet=args.quiet, **_experiment_settings(args))
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from .experiments.paper import paper

    paper(args.depths, epochs=args.epochs, out=args.out, quiet=args.quiet, val_split=args.val_split,
          **_experiment_settings(args))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .experiments.compare import compare

    settings = _experiment_settings(args)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    compare(args.models, recipe=args.recipe, out=args.out, quiet=args.quiet, **settings)
    return 0


def _experiment_options(default_out: str, default_epochs: int | None) -> argparse.ArgumentParser:
    """Options shared by the experiments: data, length, seed, device, output folder."""
    from .data import DATASETS

    shared = argparse.ArgumentParser(add_help=False)
    add = shared.add_argument
    add("--dataset", default="cifar10", choices=DATASETS, help="dataset (default cifar10)")
    add("--data-dir", default="data", help="folder holding the dataset (default ./data)")
    add("--download", action=argparse.BooleanOptionalAction, default=True,
        help="fetch the official CIFAR archive when the folder is missing (default on)")
    add("--epochs", type=int, default=default_epochs,
        help=f"epochs of every run (default {default_epochs or 'that of the recipe'})")
    add("--train-subset", type=int, default=0, metavar="N",
        help="train on N class-balanced training images, for shorter runs; 0 = all (default 0)")
    add("--seed", type=int, default=0, help="seed shared by every run (default 0)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="(default auto)")
    add("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="mixed precision (default auto)")
    add("--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="channels-last memory format (default: on for CUDA GPUs, off on CPUs; faster with bf16 on both)")
    add("--out", default=default_out, help=f"experiment folder, one run folder per model inside; an unfinished "
        f"experiment resumes where it stopped (default {default_out})")
    add("--quiet", action="store_true", help="no progress bars or epoch lines")
    _add_threads_option(shared)
    return shared


def _add_experiment_parser(commands: argparse._SubParsersAction) -> None:
    from .engine.recipes import RECIPES

    experiment = commands.add_parser("experiment", help="multi-run experiments: degradation, paper, compare")
    kinds = experiment.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    degradation = kinds.add_parser(
        "degradation", parents=[_experiment_options("experiments/degradation", 30)],
        help="plain against residual nets of growing depth (the paper's figure 6)",
        description="Train plain-D and ResNet-D for each depth D with the paper's recipe (SGD 0.1, momentum 0.9, "
                    "weight decay 1e-4, batch 128, lr /10 at 50% and 75% of the epochs) and one seed; draw "
                    "training and test error against epoch (plain left, residual right) and tabulate final errors.")
    degradation.add_argument("--depths", type=int, nargs="+", default=[20, 56],
                             help="depths among 20 32 44 56 110 (default 20 56)")
    degradation.set_defaults(handler=_cmd_degradation)

    paper = kinds.add_parser(
        "paper", parents=[_experiment_options("experiments/paper", 164)],
        help="the paper's CIFAR-10 table: ResNet-20/32/44/56/110, our error next to the published one",
        description="Train ResNet-20/32/44/56/110 with the paper's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, "
                    "batch 128, crop + flip, lr /10 at 50% and 75% of the run: 32k and 48k of 64k steps = 164 "
                    "epochs on 50k images) and write one table with the paper's test error next to ours. A GPU job "
                    "at full length.")
    paper.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56, 110],
                       help="depths among 20 32 44 56 110 1202 (default 20 32 44 56 110)")
    paper.add_argument("--val-split", type=int, default=0, metavar="N", help="hold out N training images, as "
                       "the paper's 45k/5k split (5000) did (default 0: train on all)")
    paper.set_defaults(handler=_cmd_paper)

    compare = kinds.add_parser(
        "compare", parents=[_experiment_options("experiments/compare", None)],
        help="train several models with one recipe; accuracy, parameters, MACs and time side by side",
        description="Train every model given with one recipe and the same seed, then print and plot test accuracy, "
                    "parameters, multiply-accumulates and training time side by side. Non-residual baselines "
                    "(lenet5, vgg11/13/16/19) are in 'resnet-cifar models'.")
    compare.add_argument("models", nargs="+", help="model names from 'resnet-cifar models'")
    compare.add_argument("--recipe", default="default", choices=list(RECIPES), help="the recipe of every run "
                         "(default: default)")
    compare.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    compare.set_defaults(handler=_cmd_compare)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"resnet-cifar: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = _Parser(prog="resnet-cifar", description="Train, evaluate, inspect and serve residual networks on "
                     "CIFAR-10 and CIFAR-100.")
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

    _add_train_parser(commands)
    _add_eval_parser(commands)
    _add_predict_parser(commands)
    _add_bench_parser(commands)
    _add_experiment_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line on stderr and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        from .engine.threads import configure_threads

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
    except KeyboardInterrupt:
        print("resnet-cifar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
