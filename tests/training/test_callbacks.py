"""Run reports: curves.png is redrawn at most every so often, and always when the run ends."""
from __future__ import annotations

from types import SimpleNamespace

from resnet_cifar.training import callbacks
from resnet_cifar.training.callbacks import CurvesPlot


def test_curves_are_redrawn_at_most_every_interval_and_always_at_the_end(monkeypatch, tmp_path) -> None:
    drawn = []
    monkeypatch.setattr(callbacks, "plot_curves", lambda history, path: drawn.append(len(history)))
    plot = CurvesPlot(tmp_path / "curves.png", min_interval_s=3600)
    run = SimpleNamespace(history=[])
    for epoch in range(1, 4):
        run.history.append({"epoch": epoch})
        plot.on_epoch_end(run, run.history[-1])
    assert drawn == [1]  # the first epoch at once, then not within the interval
    plot.on_train_end(run)
    assert drawn == [1, 3]  # the end always shows every epoch
    plot.on_train_end(run)
    assert drawn == [1, 3]  # nothing new: not drawn again


def test_curves_are_redrawn_every_epoch_when_the_interval_has_passed(monkeypatch, tmp_path) -> None:
    drawn = []
    monkeypatch.setattr(callbacks, "plot_curves", lambda history, path: drawn.append(len(history)))
    plot = CurvesPlot(tmp_path / "curves.png", min_interval_s=0)
    run = SimpleNamespace(history=[{"epoch": 1}])
    plot.on_epoch_end(run, run.history[0])
    run.history.append({"epoch": 2})
    plot.on_epoch_end(run, run.history[1])
    plot.on_train_end(run)
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


class Recorder(callbacks.Callback):
    """Writes down every hook call with what the run said at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_start(self, run) -> None:
        self.calls.append(("start", run.epoch))

    def on_train_batch_end(self, run) -> None:
        self.calls.append(("batch", run.epoch))

    def on_train_epoch_end(self, run, row) -> None:
        self.calls.append(("train_epoch", row["epoch"], "test_acc" in row))  # after the built-in evaluation

    def on_epoch_end(self, run, row) -> None:
        saved = (run.folder / "last.pt").is_file() and (run.folder / "metrics.csv").is_file()
        self.calls.append(("epoch", row["epoch"], run.history[-1] is row, saved))

    def on_train_end(self, run) -> None:
        self.calls.append(("end", run.epoch))


def _tiny(out, sample_folder, **settings):
    from resnet_cifar.training.config import TrainConfig

    return TrainConfig(**{"model": "resnet20", "dataset": "folder", "image_size": 16, "data_dir": str(sample_folder),
                          "epochs": 2, "batch_size": 50, "lr": 0.05, "device": "cpu", "out": str(out), **settings})


def test_a_users_callback_sees_every_hook_in_order_after_the_built_in_ones(tmp_path, sample_folder) -> None:
    from resnet_cifar import train

    recorder = Recorder()
    train(_tiny(tmp_path / "run", sample_folder), quiet=True, callbacks=[recorder])
    batches = 200 // 50
    expected = [("start", 0), *[("batch", 0)] * batches, ("train_epoch", 1, True), ("epoch", 1, True, True),
                *[("batch", 1)] * batches, ("train_epoch", 2, True), ("epoch", 2, True, True), ("end", 2)]
    assert recorder.calls == expected


def test_should_stop_ends_training_after_the_epoch_and_the_run_resumes(tmp_path, sample_folder) -> None:
    from resnet_cifar import train

    class StopAfterFirst(callbacks.Callback):
        def on_epoch_end(self, run, row) -> None:
            run.should_stop = True

    folder = train(_tiny(tmp_path / "run", sample_folder, epochs=3), quiet=True, callbacks=[StopAfterFirst()])
    assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 1
    train(resume=folder, quiet=True)
    assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 3
