"""The sweep loop: each trial of the study is an ordinary run folder, trained and reported epoch by epoch.

Several processes may run the loop on one study (one per GPU or CPU set, or on several machines sharing a
database): each asks Optuna for the next trial and trains it in ``OUT/trial-K``. While a process trains a trial
it holds a lock on that folder; a trial left running by a process that died or was stopped (its folder unlocked)
is taken over by the next process that finds it and continued from its ``last.pt`` under the same trial number,
so nothing finished is lost and nothing is counted twice.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import ResnetCifarError, first_line
from ..log import notice
from ..training.callbacks import Callback, read_metrics_csv
from ..training.config import TrainConfig
from ..training.interrupt import TrainingInterrupted
from ..training.trainer import Run, train
from .space import Dimension
from .study import import_optuna

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so one sweep process per study there
    fcntl = None  # type: ignore[assignment]

SWEEP_LOCK = ".sweep-lock"
# A process stops after this many trials in a row failed (settings that cannot train, diverging runs): the space
# or the train options need a look, and failed trials do not count towards --trials.
MAX_FAILURES_IN_A_ROW = 5


@dataclass
class SweepPlan:
    """What one sweep process does: the study, the base settings every trial starts from, the space, the limits."""

    study: Any  # optuna.Study
    out: Path
    base: TrainConfig
    space: list[Dimension]
    trials: int
    timeout_s: float | None = None
    budget_minutes: float | None = None
    metric: str = "val_acc"  # test_acc only when the user asked to select on the test split
    quiet: bool = True
    finished: list[int] = field(default_factory=list)  # trial numbers this process finished


class TrialClaim:
    """An exclusive lock on a trial's folder, held from the moment a process takes the trial until it is told."""

    def __init__(self, trial: Any, folder: Path, reported: frozenset[int] = frozenset()) -> None:
        self.trial, self.folder = trial, folder
        self.reported = reported  # the steps an earlier process already reported
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another live process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.folder / SWEEP_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TrialClaim:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def schedule_step(epoch: int, planned_epochs: int) -> int:
    """The step an epoch is reported at: per mille of the trial's planned schedule. The pruner compares trials at
    equal steps, so trials of different lengths meet at the same point of their schedules (after 1 of 12 one-cycle
    epochs a run is still warming up, after 1 of 4 it is at its peak); unique per epoch up to 1,000 epochs."""
    return round(1000 * epoch / planned_epochs)


class TrialReport(Callback):
    """Reports the selection metric to the trial after every epoch (at its ``schedule_step``); stops the run when
    Optuna prunes it, or when the next epoch would end past the time budget."""

    def __init__(self, trial: Any, metric: str, budget_s: float | None, reported: frozenset[int]) -> None:
        self.trial, self.metric, self.budget_s, self.reported = trial, metric, budget_s, reported
        self.pruned = False
        self.at_budget = False

    def on_train_start(self, run: Run) -> None:
        """A continued trial: report the epochs its earlier process finished but did not report."""
        for row in run.history:
            step = schedule_step(row["epoch"], run.config.epochs)
            if step not in self.reported:
                self.trial.report(float(row[self.metric]), step)

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        self.trial.report(float(row[self.metric]), schedule_step(row["epoch"], run.config.epochs))
        if run.epoch >= run.config.epochs:
            return
        if self.trial.should_prune():
            self.pruned = run.should_stop = True
        elif self.budget_s is not None and row["wall_seconds"] + row["epoch_seconds"] > self.budget_s:
            self.at_budget = run.should_stop = True


def run_sweep(plan: SweepPlan) -> None:
    """Run trials until the study holds ``plan.trials`` finished or running ones, or the timeout passes.

    A signal (Ctrl-C) stops the trial being trained after its current step with a checkpoint, and the sweep with
    it (``TrainingInterrupted``); the same command continues it."""
    start, failures = time.monotonic(), 0
    while plan.timeout_s is None or time.monotonic() - start < plan.timeout_s:
        claim = claim_orphan(plan) or claim_new(plan)
        if claim is None:
            return
        with claim:
            failure = run_trial(plan, claim)
        failures = failures + 1 if failure else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise ResnetCifarError(f"{failures} trials in a row failed, the last because {failure}: check the "
                                   f"search space and the train options")


def _counted(study: Any) -> list[Any]:
    """The trials that count towards ``--trials``: finished (complete or pruned) and running, by number."""
    states = import_optuna().trial.TrialState
    return sorted(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING)),
                  key=lambda trial: trial.number)


def claim_new(plan: SweepPlan) -> TrialClaim | None:
    """A new trial from Optuna, claimed; None when the study already holds its trials."""
    optuna = import_optuna()
    if len(_counted(plan.study)) >= plan.trials:
        return None
    trial = plan.study.ask()
    claim = TrialClaim(trial, plan.out / f"trial-{trial.number}")
    if not claim.acquire():  # only a process that crashed after asking could have left it locked
        raise ResnetCifarError(f"{claim.folder} is locked by another process: is another sweep writing to "
                               f"{plan.out} under another study name?")
    trial.set_user_attr("run_folder", str(claim.folder.resolve()))
    # Processes that asked at the same moment can together overshoot --trials: the later numbers give way.
    if trial.number not in [t.number for t in _counted(plan.study)[:plan.trials]]:
        trial.set_user_attr("not_run", "the study already held its --trials when this process asked")
        plan.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        claim.release()
        return None
    trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
    return claim


def claim_orphan(plan: SweepPlan) -> TrialClaim | None:
    """A running trial whose folder here is unlocked (its process died or was stopped), claimed; else None."""
    optuna = import_optuna()
    running = optuna.trial.TrialState.RUNNING
    for frozen in plan.study.get_trials(deepcopy=False, states=(running,)):
        folder = frozen.user_attrs.get("run_folder")
        if not folder or not Path(folder).is_dir():
            continue  # just asked by another process, or trained on another machine
        # Optuna keeps a trial's storage id only as FrozenTrial._trial_id; Trial(study, id) continues that trial.
        claim = TrialClaim(optuna.Trial(plan.study, frozen._trial_id), Path(folder))
        if not claim.acquire():
            continue
        now = next(t for t in plan.study.get_trials(deepcopy=False) if t.number == frozen.number)
        if now.state != running:
            claim.release()  # told by its process just before the lock was free
            continue
        claim.reported = frozenset(now.intermediate_values)
        claim.trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
        notice(f"trial {frozen.number} was left unfinished: continuing it in {folder}")
        return claim
    return None


def run_trial(plan: SweepPlan, claim: TrialClaim) -> str | None:
    """Sample (or, continued, read back) the trial's settings, train its run folder and tell Optuna the result;
    returns why the trial failed, or None."""
    optuna = import_optuna()
    trial, folder = claim.trial, claim.folder
    try:
        params = {dimension.name: dimension.sample(trial) for dimension in plan.space}
        config = dataclasses.replace(plan.base, **params, out=str(folder))
    except ResnetCifarError as error:
        return _fail(plan, trial, f"its settings cannot train: {first_line(error)}")
    trial.set_user_attr("planned_epochs", config.epochs)
    budget_s = None if plan.budget_minutes is None else 60 * plan.budget_minutes
    report = TrialReport(trial, plan.metric, budget_s, claim.reported)
    try:
        if not _spent(folder, budget_s):
            continued = (folder / "config.json").is_file()
            train(None if continued else config, resume=folder if continued else None, quiet=plan.quiet,
                  callbacks=[report])
    except TrainingInterrupted as error:  # the trial stays running; the next sweep continues it from its checkpoint
        raise TrainingInterrupted(f"the sweep stopped during trial {trial.number}, saved in {folder}: run the same "
                                  f"command to continue it", error.exit_code - 128) from None
    except ResnetCifarError as error:
        return _fail(plan, trial, first_line(error))
    rows = read_metrics_csv(folder)
    if not rows:
        return _fail(plan, trial, "it finished no epoch")
    trial.set_user_attr("epochs", len(rows))
    trial.set_user_attr("wall_seconds", float(rows[-1]["wall_seconds"]) if rows else 0.0)
    trial.set_user_attr("stopped_at_budget", report.at_budget)
    value = float(rows[-1][plan.metric])
    if report.pruned:
        plan.study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
    else:
        plan.study.tell(trial.number, value)
    plan.finished.append(trial.number)
    print(f"trial {trial.number}: {'pruned at' if report.pruned else 'finished with'} {plan.metric} "
          f"{100 * value:.2f}% after {len(rows)} of {config.epochs} epochs  {params}", flush=True)
    return None


def _fail(plan: SweepPlan, trial: Any, reason: str) -> str:
    """Tell Optuna the trial failed, and why; returns the reason."""
    trial.set_user_attr("error", reason)
    plan.study.tell(trial.number, state=import_optuna().trial.TrialState.FAIL)
    plan.finished.append(trial.number)
    notice(f"trial {trial.number} failed: {reason}")
    return reason


def _spent(folder: Path, budget_s: float | None) -> bool:
    """Whether a continued trial's next epoch would end past the budget (it was stopped there)."""
    rows = read_metrics_csv(folder)
    if budget_s is None or not rows:
        return False
    last = rows[-1]
    return float(last["wall_seconds"]) + float(last["epoch_seconds"]) > budget_s
