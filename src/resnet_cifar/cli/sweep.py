"""``resnet-cifar sweep``: an Optuna search over a recipe's settings."""
from __future__ import annotations

import argparse

from ..errors import ResnetCifarError, require_positive_int
from .common import add_threads_option, given_settings
from .train import model_flags, add_run_settings, config_from_args


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sweep.report import write_report
    from ..sweep.runner import SweepPlan, run_sweep
    from ..sweep.space import check_space_values, read_space
    from ..sweep.study import JOURNAL_FILE, check_study_name, open_study

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
    base = config_from_args(args)
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
    _record_sweep_options(study, {"train_settings": given_settings(args), "model_flags": model_flags(args),
                                  "metric": "test_acc" if args.select_on_test else "val_acc",
                                  "space": [d.name for d in space], "budget_minutes": args.budget_minutes})
    plan = SweepPlan(study, out, base, space, args.trials, args.timeout, args.budget_minutes,
                     study.user_attrs["metric"])
    run_sweep(plan)
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        from ..sweep.report import reproducing_command

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


def add_sweep_parser(commands: argparse._SubParsersAction) -> None:
    from ..sweep.study import JOURNAL_FILE, PRUNERS

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
    add_threads_option(this_call)
    add_run_settings(sweep, "train options of every trial (as 'resnet-cifar train' takes them; the sampled "
                             "settings override them)", leave_out=("out",))
    sweep.set_defaults(handler=_cmd_sweep)
