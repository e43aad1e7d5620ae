"""Pruning compares trials at the same point of their schedules, not after the same number of epochs."""
from __future__ import annotations

import pytest

from resnet_cifar.sweep.runner import schedule_step
from resnet_cifar.sweep.study import open_study

optuna = pytest.importorskip("optuna", reason="the sweep needs the sweep extra")


def test_equal_shares_of_a_schedule_are_equal_steps_and_each_epoch_has_its_own() -> None:
    assert schedule_step(1, 4) == schedule_step(3, 12) == 250 and schedule_step(12, 12) == 1000
    for planned in (1, 6, 7, 182, 1000):
        steps = [schedule_step(epoch, planned) for epoch in range(1, planned + 1)]
        assert len(set(steps)) == planned and steps[-1] == 1000


def test_a_long_schedule_is_not_pruned_for_still_warming_up(tmp_path) -> None:
    study = open_study("p", str(tmp_path / "journal"), pruner="median", startup_trials=1)
    short = study.ask()
    for epoch, accuracy in enumerate([0.5, 0.6, 0.7, 0.8], start=1):
        short.report(accuracy, schedule_step(epoch, 4))
    study.tell(short, 0.8)

    long = study.ask()  # 12 epochs: far below the short run after 1 and 2 epochs, on par at the same share
    for epoch, accuracy in enumerate([0.2, 0.3, 0.55], start=1):
        long.report(accuracy, schedule_step(epoch, 12))
        assert not long.should_prune(), f"pruned after epoch {epoch} of 12"
    hopeless = study.ask()
    for epoch, accuracy in enumerate([0.2, 0.3, 0.35], start=1):
        hopeless.report(accuracy, schedule_step(epoch, 12))
    assert hopeless.should_prune()  # a quarter into its schedule, below the short run at a quarter of its own
