"""Run reports: curves.png is redrawn at most every so often, and always when the run ends."""
from __future__ import annotations

from resnet_cifar.engine import callbacks
from resnet_cifar.engine.callbacks import CurvesPlot


def test_curves_are_redrawn_at_most_every_interval_and_always_at_the_end(monkeypatch, tmp_path) -> None:
    drawn = []
    monkeypatch.setattr(callbacks, "plot_curves", lambda history, path: drawn.append(len(history)))
    plot = CurvesPlot(tmp_path / "curves.png", min_interval_s=3600)
    history: list[dict] = []
    for epoch in range(1, 4):
        history.append({"epoch": epoch})
        plot.on_epoch_end(history[-1], history)
    assert drawn == [1]  # the first epoch at once, then not within the interval
    plot.close()
    assert drawn == [1, 3]  # the end always shows every epoch
    plot.close()
    assert drawn == [1, 3]  # nothing new: not drawn again


def test_curves_are_redrawn_every_epoch_when_the_interval_has_passed(monkeypatch, tmp_path) -> None:
    drawn = []
    monkeypatch.setattr(callbacks, "plot_curves", lambda history, path: drawn.append(len(history)))
    plot = CurvesPlot(tmp_path / "curves.png", min_interval_s=0)
    history = [{"epoch": 1}, {"epoch": 2}]
    plot.on_epoch_end(history[0], history[:1])
    plot.on_epoch_end(history[1], history)
    plot.close()
    assert drawn == [1, 2]


def test_tensorboard_that_fails_to_import_is_only_unavailable(monkeypatch) -> None:
    import builtins
    import sys

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "tensorboard":
            raise AttributeError("module 'numpy' has no attribute 'object'")  # as old tensorboards on new numpy
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing)
    assert callbacks.tensorboard_available() is False
