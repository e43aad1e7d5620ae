"""The sweep report's arithmetic: what pruning saved."""
from __future__ import annotations

import pytest

from resnet_cifar.sweep.report import pruning_savings


def _record(state: str, epochs: int, planned: int, wall_seconds: float) -> dict:
    return {"state": state, "epochs": epochs, "planned_epochs": planned, "wall_seconds": wall_seconds}


def test_pruning_saved_the_remaining_epochs_of_pruned_trials_only() -> None:
    records = [_record("complete", 6, 6, 240.0), _record("pruned", 2, 10, 80.0), _record("pruned", 1, 4, 30.0)]
    savings = pruning_savings(records)
    assert savings["spent_seconds"] == 350.0
    assert savings["saved_seconds"] == pytest.approx(8 * 40.0 + 3 * 30.0)
    assert savings["saved_share"] == pytest.approx(410.0 / 760.0)


def test_a_time_budget_caps_what_a_pruned_trial_would_have_trained() -> None:
    # 40 s epochs, pruned after 2 of 12 at 80 s: a 6-minute budget would have let it train 7 more (ending at 360 s).
    savings = pruning_savings([_record("pruned", 2, 12, 80.0)], budget_minutes=6)
    assert savings["saved_seconds"] == pytest.approx(7 * 40.0)
    assert pruning_savings([_record("pruned", 2, 12, 80.0)])["saved_seconds"] == pytest.approx(10 * 40.0)
