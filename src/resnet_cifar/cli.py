"""Command line: ``resnet-cifar COMMAND ...`` (also ``python -m resnet_cifar``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, NoReturn, Sequence

from .errors import ResnetCifarError, is_decimal, require_positive_int

Handler = Callable[[argparse.Namespace], int]


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``, for every command that computes on the CPU (applied in ``main``)."""
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch and the inference "
                        "runtimes (default: PyTorch's "
                        "choice capped at the CPUs this process may use, container quotas included; OMP_NUM_THREADS, "
                        "if set, is taken as given: torchrun sets it to 1 per process when it starts several, so "
                        "on CPUs give N = CPUs / processes)")


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_description
    from .models.summary import count_parameters_of
    from .models.weights import shipped_weights

    if args.pretrained:
        from .model_card import card_table

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
    from .models import create_model
    from .models.summary import summary_text

    options = {"stem": args.stem} if args.stem else {}
    model = create_model(args.model, num_classes=args.num_classes, **options)
    print(summary_text(model, tuple(args.input_size), depth=args.depth))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .core.distributed import world_from_environment
    from .training.trainer import train

    if args.resume:
        refuse_settings_with_resume(args)
        folder = train(None, resume=args.resume, quiet=args.quiet, stop_after=args.stop_after,
                       device=getattr(args, "device", None), data_dir=getattr(args, "data_dir", None))
    else:
        folder = train(_config_from_args(args), quiet=args.quiet, stop_after=args.stop_after,
                       overwrite=args.overwrite)
    if not args.quiet and world_from_environment().is_main:
        print(f"run folder: {folder}  (evaluate: resnet-cifar eval {folder})")
    return 0


def refuse_settings_with_resume(args: argparse.Namespace) -> None:
    """A resumed run keeps its saved settings: name every option given that would be silently ignored."""
    given = [name for name in _given_settings(args) if name not in ("device", "data_dir")]
    given += [name for name in ("stem", "shortcut", "zero_pad", "dropout") if getattr(args, name) is not None]
    given += [name for name in ("zero_init_residual", "se", "overwrite") if getattr(args, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ResnetCifarError(f"--resume continues {args.resume} with its saved settings, so {options} would be "
                               f"ignored: leave them out, or start a new run with --out (with --resume only "
                               f"--device, --data-dir, --threads, --stop-after and --quiet apply)")


def _config_from_args(args: argparse.Namespace) -> object:
    """The recipe's settings, overridden by every option given on the command line."""
    from .training.recipes import recipe_config

    options = {key: getattr(args, key) for key in ("stem", "shortcut", "zero_pad", "dropout")
               if getattr(args, key) is not None}
    options.update({key: True for key in ("zero_init_residual", "se") if getattr(args, key)})
    given = _given_settings(args)
    return recipe_config(given.pop("recipe", "default"), **given, model_options=options)


def _model_flags(args: argparse.Namespace) -> list[str]:
    """The model options given on the command line, as they were given."""
    flags = [f"--{key.replace('_', '-')}={getattr(args, key)}" for key in ("stem", "shortcut", "zero_pad", "dropout")
             if getattr(args, key) is not None]
    return flags + [f"--{key.replace('_', '-')}" for key in ("zero_init_residual", "se") if getattr(args, key)]


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .sweep.report import write_report
    from .sweep.runner import SweepPlan, run_sweep
    from .sweep.space import check_space_values, read_space
    from .sweep.study import JOURNAL_FILE, check_study_name, open_study

    for name in (args.report, args.study):
        if name is not None:
            check_study_name(name)
    if args.report:
        out = Path(args.sweep_out or f"sweeps/{args.report}")
        study = open_study(args.report, args.storage or str(out / JOURNAL_FILE), create=False)
        write_report(study, out)
        print((out / "sweep.md").read_text(), end="")
        figures = [name for name in ("history.png", "importances.png", "minutes.png") if (out / name).exists()]
        print(f"written to {out}: sweep.md, sweep.json, {', '.join(figures)}")
        return 0
    if not args.study or not args.space:
        raise ResnetCifarError("give --study NAME and --space FILE to sweep (or --report STUDY for a report)")
    space = read_space(args.space)
    base = _config_from_args(args)
    check_space_values(space, base, args.space)
    if not base.val_split and not args.select_on_test:
        raise ResnetCifarError("a sweep chooses on validation images, never the test split: give --val-split N "
                               "(e.g. --val-split 5000), or --select-on-test to choose on the test split anyway")
    for name, value in (("trials", args.trials), ("startup_trials", args.startup_trials)):
        require_positive_int(name, value)
    for name, value in (("timeout", args.timeout), ("budget_minutes", args.budget_minutes)):
        if value is not None and not value > 0:
            raise ResnetCifarError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    out = Path(args.sweep_out or f"sweeps/{args.study}")
    study = open_study(args.study, args.storage or str(out / JOURNAL_FILE), pruner=args.pruner,
                       startup_trials=args.startup_trials, sampler_seed=args.sampler_seed)
    _record_sweep_options(study, {"train_settings": _given_settings(args), "model_flags": _model_flags(args),
                                  "metric": "test_acc" if args.select_on_test else "val_acc",
                                  "space": [d.name for d in space], "budget_minutes": args.budget_minutes})
    plan = SweepPlan(study, out, base, space, args.trials, args.timeout, args.budget_minutes,
                     study.user_attrs["metric"])
    run_sweep(plan)
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        from .sweep.report import reproducing_command

        best = study.best_trial
        print(f"best: trial {best.number}, {plan.metric} {100 * best.value:.2f}%; reproduce it with:\n"
              f"  {reproducing_command(study, best.params)}")
    return 0


def _record_sweep_options(study: object, options: dict) -> None:
    """Keep the sweep's options with its study; every process of a study must give the same ones."""
    for key, value in options.items():
        recorded = study.user_attrs.get(key)
        if recorded is None:
            study.set_user_attr(key, value)
        elif recorded != value:
            raise ResnetCifarError(f"the study {study.study_name!r} was started with {key} {recorded!r}, this process "
                                   f"gives {value!r}: give the same options, or another --study")


def _given_settings(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` settings given on the command line (the others are not in ``args``)."""
    from .config_options import config_fields

    return {f.name: getattr(args, f.name) for f in config_fields() if hasattr(args, f.name)}


def _cmd_eval(args: argparse.Namespace) -> int:
    from .core.source import resolve_source
    from .inference.evaluate import evaluate, format_per_class
    from .inference.robustness import format_robustness, parse_severities

    source = resolve_source(args.source, args.pretrained)
    if args.reference is not None and args.corruptions is None:
        raise ResnetCifarError("--reference compares corruption errors: give --corruptions too")
    results = evaluate(source, dataset=args.dataset, data_dir=args.data_dir, split=args.split, tta=args.tta,
                       out_dir=args.out, device=args.device, download=args.download, int8=args.int8,
                       backend=args.backend, explain=args.explain, corruptions=args.corruptions,
                       severities=parse_severities(args.severities), corruption_seed=args.seed,
                       reference=args.reference)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_per_class(results))
        if "corruptions" in results:
            print(format_robustness(results["corruptions"]))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .inference.calibrate import calibrate, format_calibration_fit

    fitted = calibrate(args.source, pretrained=args.pretrained, data_dir=args.data_dir, device=args.device,
                       download=args.download)
    print(json.dumps(fitted, indent=2) if args.json else format_calibration_fit(fitted))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .inference.predict import format_predictions, predict

    source, inputs = _source_and_inputs(args, "classify")
    explain_dir = None if args.explain is None else args.explain or source.subfolder("explain")
    results = predict(source, inputs, top_k=args.top_k, device=args.device, timeout=args.timeout,
                      backend=args.backend, explain_dir=explain_dir)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0


def _source_and_inputs(args: argparse.Namespace, purpose: str) -> tuple[object, list[str]]:
    """``predict`` and ``explain`` take SOURCE then inputs, or --pretrained NAME then inputs: the model source and
    the inputs."""
    from .core.source import resolve_source

    if not args.pretrained and len(args.paths) < 2:
        raise ResnetCifarError(f"give a model (or --pretrained NAME), then images to {purpose}")
    source, inputs = (None, args.paths) if args.pretrained else (args.paths[0], args.paths[1:])
    return resolve_source(source, args.pretrained), inputs


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .core.source import resolve_source
    from .inference.explain import feature_sizes
    from .inference.explain_report import explain_inputs, pytorch_model

    if args.layer == "list":  # only the model is needed
        given = None if args.pretrained or not args.paths else args.paths[0]
        trained = pytorch_model(resolve_source(given, args.pretrained), args.device)
        for name, size in feature_sizes(trained.model, trained.input_size).items():
            print(f"{name:<10} {size[0]}x{size[1]}")
        return 0
    source, inputs = _source_and_inputs(args, "explain")
    report = explain_inputs(source, inputs, method=args.method, layer=args.layer, target=args.target, top_k=args.top_k,
                            out_dir=args.out, device=args.device, timeout=args.timeout,
                            feature_maps=args.feature_maps, filters=args.filters)
    for image in report["images"]:
        classes = ", ".join(f"{c['class']} {100 * c['probability']:.1f}%" for c in image["classes"])
        print(f"{image['input']}: {classes} -> {image['figure']}")
    print(f"{report['method']}{' at ' + report['layer'] if report['layer'] else ''}; numbers in "
          f"{Path(report['out_dir']) / 'explain.json'}")
    return 0


def _add_explain_parser(commands: argparse._SubParsersAction) -> None:
    from .core.device import DEVICES
    from .inference.explain import METHODS

    command = commands.add_parser(
        "explain", help="what a model looked at: Grad-CAM and other maps of image files, folders or URLs",
        usage="%(prog)s [options] {SOURCE | --pretrained NAME} PATH_OR_URL [PATH_OR_URL ...]",
        description="For each image, a figure with the image, the map and the map laid over it for each explained "
                    "class (titled class and probability), and the maps' numbers in explain.json. Needs a PyTorch "
                    "model (run folder, model folder, .pt checkpoint, shipped weights), not an exported file.")
    command.add_argument("paths", nargs="*", metavar="SOURCE PATH_OR_URL", help="run folder, model.safetensors or "
                         ".pt checkpoint (not with --pretrained), then image files, folders, http(s) URLs")
    command.add_argument("--pretrained", metavar="NAME", help=f"use shipped weights instead of SOURCE "
                         f"({_pretrained_names()})")
    command.add_argument("--method", default="gradcam", choices=METHODS, help="gradcam (default), gradcam++, "
                         "saliency (input gradients) or integrated-gradients (captum: the explain extra)")
    command.add_argument("--layer", help="the feature map the Grad-CAM methods explain (a stage name: 'list' "
                         "prints them with their sizes; default: the deepest at least 8x8, e.g. layer3 of ResNet-18 "
                         "at 32x32, whose last stage layer4 is 4x4)")
    command.add_argument("--target", default="top", help="the class explained: top (default: the most probable "
                         "--top-k), a class name or a class number")
    command.add_argument("--top-k", type=int, default=1, help="with --target top: how many classes (default 1)")
    command.add_argument("--out", help="folder for the figures and explain.json (default: explain/ in the model's "
                         "folder, ./explain-NAME for --pretrained)")
    command.add_argument("--feature-maps", action="store_true", help="also draw the activations after every stage "
                         "for the first image (feature-maps.png: the 8 channels with the highest mean each)")
    command.add_argument("--filters", action="store_true", help="also draw the first convolution's kernels "
                         "(filters.png)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a URL (default 10)")
    _add_threads_option(command)
    command.set_defaults(handler=_cmd_explain)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_report, format_report, run_bench
    from .core.device import resolve_device
    from .inference.int8 import int8_unavailable_reason

    for size in args.batch_sizes:
        require_positive_int("batch_sizes", size)
    require_positive_int("steps", args.steps)
    if args.warmup < 0:
        raise ResnetCifarError(f"--warmup must be an integer >= 0, got {args.warmup}")
    device = resolve_device(args.device)
    if device.type == "cpu" and (reason := int8_unavailable_reason()):
        print(f"note: no int8 inference rows; {reason}", file=sys.stderr)
    rows = run_bench(args.models, args.batch_sizes, device, steps=args.steps, warmup=args.warmup,
                     compile_too=args.compile)
    report = bench_report(rows, device)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    from .core.device import DEVICES

    bench = commands.add_parser("bench", help="training, inference and data-pipeline images/s on this device, "
                                "with the TFLOP/s they amount to and their share of its peak")
    bench.add_argument("--models", nargs="+", default=["resnet18", "resnet20"], help="(default resnet18 resnet20)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[128], help="(default 128)")
    bench.add_argument("--steps", type=int, default=5, help="timed steps per row (default 5)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    bench.add_argument("--compile", action="store_true", help="also time each task with torch.compile")
    bench.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_threads_option(bench)
    bench.set_defaults(handler=_cmd_bench)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    from .training.recipes import RECIPES

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
    _add_threads_option(this_call)
    _add_run_settings(train, "settings (saved in the run folder's config.json; each given one overrides the recipe's)")
    train.set_defaults(handler=_cmd_train)


def _add_run_settings(parser: argparse.ArgumentParser, title: str, leave_out: tuple[str, ...] = ()) -> None:
    """The settings of a training run (``TrainConfig``'s but ``leave_out``, each overriding the recipe's) and the
    model options."""
    from .config_options import add_config_options, config_fields
    from .models.blocks import SHORTCUT_TYPES, ZERO_PAD_LAYOUTS
    from .models.resnet import STEM_TYPES
    from .training.recipes import RECIPES

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


def _add_sweep_parser(commands: argparse._SubParsersAction) -> None:
    from .sweep.study import JOURNAL_FILE, PRUNERS

    sweep = commands.add_parser(
        "sweep", help="search training settings with Optuna: each trial a run folder, pruned epoch by epoch",
        description="Search the settings listed in --space (ranges and choices of train options) for the best "
                    "validation accuracy. Each trial trains an ordinary run folder, OUT/trial-K, with the train "
                    "options given plus its sampled settings, reports every epoch to Optuna, and is pruned when it "
                    "falls behind. Several processes (on one machine, or on many with a database --storage) may run "
                    "the same command to share the study; a killed or stopped sweep continues where it stopped.")
    this_call = sweep.add_argument_group("the sweep")
    this_call.add_argument("--study", metavar="NAME", help="the study's name in the storage")
    this_call.add_argument("--storage", metavar="URL_OR_FILE", help=f"a database URL Optuna accepts (e.g. "
                           f"postgresql://user:password@host/db, for many machines), or a journal file (default: "
                           f"OUT/{JOURNAL_FILE})")
    this_call.add_argument("--out", dest="sweep_out", metavar="DIR", help="folder of the trials' run folders and the "
                           "report (default sweeps/STUDY)")
    this_call.add_argument("--space", metavar="FILE", help="search space, YAML or JSON: SETTING: {low: A, high: B, "
                           "log: true, step: S} or SETTING: {choices: [...]}, for any train setting")
    this_call.add_argument("--trials", type=int, default=20, help="trials of the study in all, counting every "
                           "process's (default 20)")
    this_call.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds of this process")
    this_call.add_argument("--budget-minutes", type=float, metavar="M", help="stop a trial after the epoch beyond "
                           "which the next would end past M minutes of wall clock; its accuracy there counts")
    this_call.add_argument("--pruner", default="median", choices=PRUNERS, help="median: from a quarter of its "
                           "schedule on, stop a trial whose accuracy is below the median of earlier trials' at the "
                           "same share of theirs; halving: successive halving (default median)")
    this_call.add_argument("--startup-trials", type=int, default=5, metavar="N", help="trials finished before the "
                           "median pruner prunes (default 5)")
    this_call.add_argument("--sampler-seed", type=int, metavar="N", help="seed of Optuna's TPE sampler (default: "
                           "random)")
    this_call.add_argument("--select-on-test", action="store_true", help="choose on the test accuracy when no "
                           "--val-split is given (the test split then no longer measures the result)")
    this_call.add_argument("--report", metavar="STUDY", help="write OUT/sweep.md, sweep.json and the figures of "
                           "this study instead of sweeping")
    _add_threads_option(this_call)
    _add_run_settings(sweep, "train options of every trial (as 'resnet-cifar train' takes them; the sampled "
                             "settings override them)", leave_out=("out",))
    sweep.set_defaults(handler=_cmd_sweep)


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    from .inference.backends import AUTO_ORDER, BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, help="what runs the model: torch, or on the CPU the model "
                        "exported on the fly (2-6 s) and run by onnxruntime or openvino (the onnx/openvino extras); "
                        f"auto: on a CPU the fastest installed ({', then '.join(AUTO_ORDER)}), else torch (default: "
                        "torch, or the runtime of an exported file)")


def _pretrained_names() -> str:
    from .models.weights import list_pretrained

    try:
        return ", ".join(list_pretrained()) or "none shipped yet"
    except ResnetCifarError:  # a damaged manifest must not break --help or other commands; using one says why
        return "their list is unreadable"


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    from .core.batches import TTA_MODES
    from .core.device import DEVICES
    from .data import DATASETS, SPLITS

    evaluate = commands.add_parser("eval", help="accuracy, per-class table, confusion matrix and image grids")
    evaluate.add_argument("source", nargs="?", help="run folder, model.safetensors, .pt checkpoint, or a file "
                          "written by 'resnet-cifar export' (.onnx, .xml, .pt2)")
    evaluate.add_argument("--pretrained", metavar="NAME", help=f"evaluate shipped weights instead of SOURCE "
                          f"({_pretrained_names()}); figures go to ./eval-NAME, data to ./data unless given")
    evaluate.add_argument("--dataset", choices=DATASETS, help="dataset (default: the one it was trained on)")
    evaluate.add_argument("--data-dir", help="dataset folder (default: the one it was trained with)")
    evaluate.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                          help="fetch the official CIFAR archive when the folder is missing (default on)")
    evaluate.add_argument("--split", default="test", choices=SPLITS, help="split (default test)")
    evaluate.add_argument("--tta", nargs="?", const="flip", default="off", choices=TTA_MODES,
                          help="test-time augmentation: average the probabilities of each image's views; flip (the "
                               "default of a bare --tta): with its mirror image, flip-translate: also moved one pixel "
                               "down-right and up-left (airbench's)")
    evaluate.add_argument("--explain", action="store_true", help="also predictions-cam.png and mistakes-cam.png: "
                          "the grids with each image's Grad-CAM map of its predicted class laid over it")
    evaluate.add_argument("--corruptions", nargs="*", metavar="NAME", help="also the accuracy on the split "
                          "corrupted as CIFAR-10-C (all, the default, or names: gaussian_noise, shot_noise, "
                          "impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog, "
                          "brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise, "
                          "gaussian_blur, spatter, saturate), kept under the data folder; robustness.png (needs the "
                          "corruptions extra)")
    evaluate.add_argument("--severities", default="1-5", help="corruption severities: 1-5 (default), 3 or 1,3,5")
    evaluate.add_argument("--reference", metavar="SOURCE", help="with --corruptions: the model the corruption "
                          "errors are relative to (CE, mCE, relative mCE)")
    evaluate.add_argument("--seed", type=int, default=0, help="with --corruptions: the seed of the corrupted images "
                          "(default 0; each seed's sets are kept apart)")
    evaluate.add_argument("--int8", action="store_true", help="quantise to int8 first, calibrated on 1,000 training "
                          "images, on the CPU: with --backend openvino by NNCF (auto's choice where installed), with "
                          "onnxruntime by its static quantisation, with torch by torchao")
    evaluate.add_argument("--out", help="folder for eval.json and the figures (default: beside the weights)")
    evaluate.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    evaluate.add_argument("--json", action="store_true", help="also print the results as JSON")
    _add_backend_option(evaluate)
    _add_threads_option(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)


def _add_calibrate_parser(commands: argparse._SubParsersAction) -> None:
    from .core.device import DEVICES

    command = commands.add_parser(
        "calibrate", help="fit a temperature to a run's probabilities on its validation images, saved in model.json",
        description="Temperature scaling (Guo et al. 2017): the logits' divisor that minimises the negative "
                    "log-likelihood on the validation images the run held out of training (train --val-split, "
                    "recreated from its seed; never the test split). Saved in model.json; eval, predict, serve and "
                    "export apply it, and eval reports the calibration error before and after.")
    command.add_argument("source", nargs="?", help="run folder or model folder (model.safetensors + model.json), "
                         "trained with --val-split")
    command.add_argument("--pretrained", metavar="NAME", help="shipped weights: refused, as they kept no validation "
                         "images")
    command.add_argument("--data-dir", help="dataset folder (default: the one it was trained with)")
    command.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                         help="fetch the official CIFAR archive when the folder is missing (default on)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_threads_option(command)
    command.set_defaults(handler=_cmd_calibrate)


def _add_predict_parser(commands: argparse._SubParsersAction) -> None:
    from .core.device import DEVICES

    predict = commands.add_parser("predict", help="top-k classes of image files, folders or http(s) URLs",
                                  usage="%(prog)s [options] {SOURCE | --pretrained NAME} PATH_OR_URL [PATH_OR_URL ...]")
    predict.add_argument("paths", nargs="+", metavar="SOURCE PATH_OR_URL", help="run folder, model.safetensors, .pt "
                         "checkpoint or exported file (not with --pretrained), then image files, folders, http(s) "
                         "URLs")
    predict.add_argument("--pretrained", metavar="NAME", help=f"use shipped weights instead of SOURCE "
                         f"({_pretrained_names()})")
    predict.add_argument("--top-k", type=int, default=5, help="classes shown per image (default 5)")
    predict.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    predict.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a URL (default 10)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--explain", nargs="?", const="", metavar="DIR", help="also draw each image with the "
                         "Grad-CAM map of its top class over it, into DIR (default: explain/ in the model's folder, "
                         "./explain-NAME for --pretrained); needs the PyTorch model")
    _add_backend_option(predict)
    _add_threads_option(predict)
    predict.set_defaults(handler=_cmd_predict)


# The ``TrainConfig`` settings that every run of an experiment shares.
EXPERIMENT_SETTINGS = ("dataset", "data_dir", "download", "train_subset", "seed", "device", "amp", "channels_last",
                       "compile", "compile_mode")


def _cmd_export(args: argparse.Namespace) -> int:
    from .core.source import resolve_source
    from .inference.export import TOLERANCE, check_format, export, int8_images
    from .inference.loading import load_trained_model
    from .inference.runtimes import input_description

    source = resolve_source(args.source, args.pretrained)
    check_format(args.format, int8=args.int8)
    if args.batch == "dynamic":
        batch = None
    elif is_decimal(args.batch) and int(args.batch) > 0:
        batch = int(args.batch)
    else:
        raise ResnetCifarError(f"--batch must be a positive integer or 'dynamic', got {args.batch!r}")
    source.require_weights("export")
    trained = load_trained_model(source)
    if not args.int8:
        done = export(trained, args.format, args.out, batch=batch, include_preprocessing=args.include_preprocessing)
        takes = f", input {input_description(args.include_preprocessing)}" if args.include_preprocessing else ""
        print(f"{done.path}: {args.format}, batch {batch or 'dynamic'}{takes}; verified against PyTorch: largest "
              f"logit difference {done.max_difference:.2g} (allowed {TOLERANCE * done.scale:.2g})")
        return 0
    images, where = int8_images(trained, args.dataset, args.data_dir)
    done = export(trained, args.format, args.out, batch=batch, int8=images,
                  include_preprocessing=args.include_preprocessing)
    float_accuracy, int8_accuracy = done.accuracies or (float("nan"), float("nan"))
    how = "NNCF" if args.format == "openvino" else "ONNX Runtime's static quantisation"
    print(f"{done.path}: {args.format} int8 ({how}, calibrated on {len(images.calibration)} training images of "
          f"{where}), batch {batch or 'dynamic'}; on its {len(images.check_labels)} test images: top-1 agreement "
          f"with float32 {100 * done.agreement:.2f}%, accuracy {100 * int8_accuracy:.2f}% "
          f"(float32 {100 * float_accuracy:.2f}%)")
    return 0


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
    from .inference.export import FORMATS, INPUT_LAYOUTS

    command = commands.add_parser(
        "export", help="write a model as ONNX, OpenVINO IR or a torch.export program, verified against PyTorch",
        description="Export a trained model with its framework's own exporter; the class names, mean/std, input "
                    "size and temperature (resnet-cifar calibrate) travel in the file's metadata (ONNX "
                    "metadata_props, OpenVINO rt_info, NAME.pt2.json beside a .pt2), with a SHA-256 of the "
                    "weights checked at every load. The exported model's logits on a fixed batch must equal "
                    "PyTorch's within 1e-4 of the largest logit, or nothing is written (an earlier file at --out "
                    "stays as it was).")
    command.add_argument("source", nargs="?", help="run folder, model folder (model.safetensors) or .pt checkpoint")
    command.add_argument("--pretrained", metavar="NAME", help=f"export shipped weights instead ({_pretrained_names()})")
    command.add_argument("--format", required=True, choices=FORMATS, help="onnx (needs the onnx extra), openvino "
                         "(.xml + .bin; the openvino extra) or pt2 (torch.export.load, no extra)")
    command.add_argument("--out", help="the file to write (default: MODEL.onnx/.xml/.pt2 beside the weights, or "
                         "./NAME.* for --pretrained)")
    command.add_argument("--batch", default="dynamic", help="a fixed batch size, or dynamic (default)")
    command.add_argument("--include-preprocessing", nargs="?", const="nhwc", choices=INPUT_LAYOUTS, metavar="LAYOUT",
                         help="the graph takes uint8 RGB pixels (0-255) and normalises them itself, in layout nhwc "
                         "(default when given: images as decoders give them) or nchw")
    command.add_argument("--int8", action="store_true", help="openvino and onnx: quantise post-training on 1,000 "
                         "training images (NNCF; ONNX Runtime's static quantisation), and print the top-1 agreement "
                         "with float32 and both accuracies on the test split")
    command.add_argument("--dataset", help="--int8: the images to calibrate and check on (default: the model's "
                         "dataset, or the bundled sample for a CIFAR-10 model without one)")
    command.add_argument("--data-dir", help="--int8: the dataset's folder (default: the one it was trained with)")
    command.set_defaults(handler=_cmd_export)


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    try:
        from .serve.app import ServeSettings
        from .serve.server import API_KEY_VARIABLE, serve
    except ImportError as error:
        raise ResnetCifarError(f"serve needs FastAPI, uvicorn and prometheus-client: pip install "
                               f"'resnet-cifar[serve]' ({error})") from None
    settings = ServeSettings(source=args.source, pretrained=args.pretrained, backend=args.backend, device=args.device,
                             max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                             max_bytes=args.max_bytes, max_pixels=args.max_pixels, max_images=args.max_images,
                             timeout_s=args.timeout, api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None,
                             header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                             keep_alive_s=args.keep_alive, max_header_bytes=args.max_header_bytes,
                             max_headers=args.max_headers, max_connections=args.max_connections)
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def _add_serve_parser(commands: argparse._SubParsersAction) -> None:
    from .core.device import DEVICES
    from .inference.backends import BACKENDS

    command = commands.add_parser(
        "serve", help="an HTTP API and a web page that classify images with a model (the serve extra)",
        description="Serve a model over HTTP: POST /predict (an image as the body, or multipart field 'image'; "
                    "?top_k=5), POST /predict/batch (several 'image' fields), POST /explain (a PNG, or "
                    "?format=json; ?method=, ?layer=, ?target= as 'explain' takes them), GET /health, /info, /metrics "
                    "(Prometheus) and a web page at /. Concurrent requests are batched into one forward pass "
                    "(up to --max-batch images, waiting at most --max-wait-ms). Uploads stay in memory; the server "
                    "never fetches URLs.")
    command.add_argument("source", nargs="?", help="run folder, model folder, .pt checkpoint or exported file "
                         "(.onnx, .xml, .pt2)")
    command.add_argument("--pretrained", metavar="NAME", help=f"serve shipped weights instead ({_pretrained_names()})")
    command.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                         "only; another address without an API key prints a warning)")
    command.add_argument("--port", type=int, default=8000, help="(default 8000)")
    command.add_argument("--backend", default="auto", choices=BACKENDS, help="what runs the model (default auto: "
                         "on a CPU the fastest runtime installed, else torch)")
    command.add_argument("--device", default="auto", choices=DEVICES, help="(default auto)")
    command.add_argument("--max-batch", type=int, default=64, help="most images per forward pass; 1 turns dynamic "
                         "batching off (default 64)")
    command.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more images "
                         "after its first (default 5)")
    command.add_argument("--max-queue", type=int, default=1024, help="images waiting at most; beyond, 429 "
                         "(default 1024)")
    command.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="largest request body, refused "
                         "with 413 before it is read (default 10 MB)")
    command.add_argument("--max-pixels", type=int, default=25_000_000, help="largest image, in pixels, refused "
                         "with 400 before it is decoded (default 25,000,000)")
    command.add_argument("--max-images", type=int, default=64, help="most images per /predict/batch request "
                         "(default 64)")
    command.add_argument("--timeout", type=float, default=30.0, help="seconds a request may wait for its answer; "
                         "beyond, 503 (default 30)")
    command.add_argument("--api-key", help="require this key ('Authorization: Bearer KEY' or 'X-API-Key: KEY') "
                         "on every endpoint but / and /health (default: env RESNET_CIFAR_API_KEY, else none)")
    command.add_argument("--workers", type=int, default=1, help="server processes, each with its own model "
                         "(default 1)")
    connections = command.add_argument_group("connections (each limit answered with a JSON error, then closed)")
    connections.add_argument("--header-timeout", type=float, default=10.0, metavar="S", help="seconds for a request "
                             "line and headers to arrive after the connection opens or the previous answer; beyond, "
                             "408 (an idle connection is closed) (default 10)")
    connections.add_argument("--body-timeout", type=float, default=30.0, metavar="S", help="seconds for a request "
                             "body to arrive after its headers; beyond, 408 (default 30)")
    connections.add_argument("--keep-alive", type=float, default=5.0, metavar="S", help="seconds an idle "
                             "connection stays open after an answer (default 5)")
    connections.add_argument("--max-header-bytes", type=int, default=32 * 1024, metavar="N", help="largest request "
                             "line and headers together; beyond, 431 (default 32768)")
    connections.add_argument("--max-headers", type=int, default=100, metavar="N", help="most header lines in a "
                             "request; beyond, 431 (default 100)")
    connections.add_argument("--max-connections", type=int, default=1000, metavar="N", help="open connections per "
                             "process; more are closed at once (default 1000, lowered to fit the open-file limit)")
    _add_threads_option(command)
    command.set_defaults(handler=_cmd_serve)


def _cmd_import(args: argparse.Namespace) -> int:
    from .inference.published import import_weights

    options = {key: getattr(args, key) for key in ("shortcut", "zero_pad", "stem") if getattr(args, key) is not None}
    done = import_weights(args.format, args.source, args.out, model=args.model, num_classes=args.num_classes,
                          dataset=args.dataset, mean=args.mean, std=args.std, **options)
    print(f"{done.folder}: {done.model} {done.options or ''} with {done.num_classes} classes (use it with: "
          f"resnet-cifar eval {done.folder}, predict, train --init-from)")
    return 0


def _add_import_parser(commands: argparse._SubParsersAction) -> None:
    from .inference.published import FORMATS
    from .models.blocks import SHORTCUT_TYPES, ZERO_PAD_LAYOUTS
    from .models.resnet import STEM_TYPES

    formats = "; ".join(f"{name}: {spec.description}" + (f" (names: {', '.join(spec.downloads)})"
                                                         if spec.downloads else "") for name, spec in FORMATS.items())
    command = commands.add_parser(
        "import", help="convert a published checkpoint of another project into a model folder",
        description="Convert published weights into a model folder (model.safetensors + model.json with the "
                    "classes and the preprocessing the source used) that eval, predict and train --init-from "
                    "accept. SOURCE is a file, or one of the format's names, downloaded once with a hash check into "
                    "torch's hub cache.", epilog=f"Formats: {formats}.")
    command.add_argument("format", choices=list(FORMATS), help="whose checkpoint it is")
    command.add_argument("source", help="the checkpoint file, or a name of the format's downloads")
    command.add_argument("--model", help="our model it is (default: the download's; see 'resnet-cifar models')")
    command.add_argument("--num-classes", type=int, help="check the head has this many classes (default: the file's)")
    command.add_argument("--dataset", choices=["cifar10", "cifar100"], help="names the classes and picks the "
                         "source's preprocessing for it (default: the download's)")
    command.add_argument("--mean", type=float, nargs=3, help="override the source's normalisation mean")
    command.add_argument("--std", type=float, nargs=3, help="override the source's normalisation std")
    command.add_argument("--shortcut", choices=SHORTCUT_TYPES, help="state-dict format: the model's shortcut type")
    command.add_argument("--zero-pad", choices=ZERO_PAD_LAYOUTS, help="state-dict format: option A's layout")
    command.add_argument("--stem", choices=STEM_TYPES, help="state-dict format: the model's stem")
    command.add_argument("--out", required=True, help="the model folder to write")
    command.set_defaults(handler=_cmd_import)


def _experiment_settings(args: argparse.Namespace) -> dict:
    """The shared settings as given (or defaulted) on the command line."""
    return {name: getattr(args, name) for name in EXPERIMENT_SETTINGS}


def _cmd_degradation(args: argparse.Namespace) -> int:
    from .experiments.degradation import degradation

    degradation(args.depths, epochs=args.epochs, out=args.out, quiet=args.quiet, jobs=args.jobs,
                val_split=args.val_split, **_experiment_settings(args))
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from .experiments.paper import paper

    paper(args.depths, epochs=args.epochs, runs=args.runs, out=args.out, quiet=args.quiet, jobs=args.jobs,
          val_split=args.val_split, **_experiment_settings(args))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .experiments.compare import compare, compare_recipes

    settings = _experiment_settings(args)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    recipes = args.recipe or ["default"]
    if len(recipes) == 1:
        from .inference.robustness import parse_severities

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
    from .config_options import add_config_options

    shared = argparse.ArgumentParser(add_help=False)
    add_config_options(shared, EXPERIMENT_SETTINGS)
    shared.add_argument("--epochs", type=int, default=default_epochs,
                        help=f"epochs of every run (default {default_epochs or 'that of the recipe'})")
    shared.add_argument("--out", default=default_out, help=f"experiment folder, one run folder per model inside; an "
                        f"unfinished experiment resumes where it stopped (default {default_out})")
    shared.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    _add_threads_option(shared)
    return shared


def _paper_options() -> argparse.ArgumentParser:
    """Options of the experiments that follow the paper: its validation split and runs in parallel."""
    from .experiments.paper_schedule import PAPER_VAL_SPLIT

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--val-split", type=int, default=PAPER_VAL_SPLIT, metavar="N", help=f"hold out N training "
                        f"images, as the paper's 45k/5k split does (default {PAPER_VAL_SPLIT}; 0: train on all)")
    shared.add_argument("--jobs", type=int, default=1, metavar="N", help="train N runs at once, one process each "
                        "(small nets leave a GPU idle one at a time); the CPU threads are split between them "
                        "(default 1)")
    return shared


def _add_experiment_parser(commands: argparse._SubParsersAction) -> None:
    from .experiments.paper_schedule import PAPER_EPOCHS
    from .training.recipes import RECIPES

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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"resnet-cifar: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    from .models.resnet import STEM_TYPES

    parser = _Parser(prog="resnet-cifar", description="Train, evaluate, inspect and serve residual networks on "
                     "CIFAR-10 and CIFAR-100.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    _add_train_parser(commands)
    _add_sweep_parser(commands)
    _add_eval_parser(commands)
    _add_calibrate_parser(commands)
    _add_predict_parser(commands)
    _add_explain_parser(commands)
    _add_bench_parser(commands)
    _add_import_parser(commands)
    _add_export_parser(commands)
    _add_serve_parser(commands)
    _add_experiment_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line on stderr and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        from .core.threads import configure_threads

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
