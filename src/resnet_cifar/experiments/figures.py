"""Figures of the experiments: the degradation plot (the paper's figure 1/6), the model and recipe comparisons."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from ..plots import save_figure
from .runner import Finished


def plot_degradation(plain: Sequence[Finished], residual: Sequence[Finished], path: Path) -> None:
    """Training error (thin, dashed) and test error (bold) against training steps: plain nets left, residual nets
    right (the paper's figure 6)."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    _draw_errors(axes[0], plain, "plain networks")
    _draw_errors(axes[1], residual, "residual networks")
    axes[0].set_ylabel("error (%)")
    save_figure(figure, path)


def plot_error_curves(runs: Sequence[Finished], title: str, path: Path) -> None:
    """Training error (thin, dashed) and test error (bold) of ``runs`` against training steps, on one axis."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    _draw_errors(axis, runs, title)
    axis.set_ylabel("error (%)")
    save_figure(figure, path)


def _draw_errors(axis: plt.Axes, runs: Sequence[Finished], title: str) -> None:
    """One line pair per run, coloured by depth order; the x axis in thousands of steps where every run recorded
    its steps per epoch, else in epochs."""
    colours = plt.get_cmap("viridis")
    in_steps = all(run.steps_per_epoch for run in runs)
    for index, run in enumerate(runs):
        colour = colours(index / max(1, len(runs) - 1) * 0.85)
        scale = run.steps_per_epoch / 1000 if in_steps else 1
        x = [row["epoch"] * scale for row in run.history]
        axis.plot(x, [100 * (1 - row["train_acc"]) for row in run.history], color=colour, linewidth=1,
                  linestyle="--")
        axis.plot(x, [100 * (1 - row["test_acc"]) for row in run.history], color=colour, linewidth=2.5,
                  label=run.name)
    axis.set_title(f"{title}: test error (bold), training error (dashed)")
    axis.set_xlabel("training steps (thousands)" if in_steps else "epoch")
    if not in_steps:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend()


def plot_comparison(runs: Sequence[Finished], parameters: Sequence[int], path: Path) -> None:
    """Test accuracy against epoch for each model, and final test accuracy against parameters."""
    figure, (curve_ax, size_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run, count in zip(runs, parameters):
        epochs = [row["epoch"] for row in run.history]
        line, = curve_ax.plot(epochs, [100 * row["test_acc"] for row in run.history], marker=".", label=run.name)
        size_ax.scatter([count], [100 * run.final["test_acc"]], color=line.get_color())
        size_ax.annotate(run.name, (count, 100 * run.final["test_acc"]), textcoords="offset points", xytext=(4, 4),
                         fontsize=8)
    curve_ax.set(title="test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    size_ax.set(title="final test accuracy against size", xlabel="parameters", ylabel="accuracy (%)", xscale="log")
    curve_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    curve_ax.legend()
    for axis in (curve_ax, size_ax):
        axis.grid(alpha=0.3)
    save_figure(figure, path)


def plot_recipe_curves(runs: Sequence[Finished], target: float, path: Path) -> None:
    """Test accuracy against wall-clock minutes, one line per recipe, with the first recipe's final accuracy."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        minutes = [float(row.get("wall_seconds") or row["elapsed_seconds"]) / 60 for row in run.history]
        axis.plot(minutes, [100 * row["test_acc"] for row in run.history], marker=".", label=run.name)
    axis.axhline(100 * target, color="grey", linestyle=":", linewidth=1, label=f"{runs[0].name}: final")
    axis.set(title="test accuracy against wall-clock time", xlabel="minutes", ylabel="accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, path)
