"""Figures: training curves, image grids titled "prediction (truth)", the confusion matrix, explanations (maps,
feature maps, first-layer filters). PNG files via Agg."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from .files import atomic_write  # noqa: E402

RIGHT, WRONG = "tab:green", "tab:red"


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` as a PNG atomically and free it."""
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(figure)


def plot_curves(rows: Sequence[dict], path: Path) -> None:
    """Loss, accuracy (train and each evaluated split) and learning rate against epoch."""
    epochs = [row["epoch"] for row in rows]
    splits = [s for s in ("train", "val", "test") if rows and rows[0].get(f"{s}_loss") not in (None, "")]
    figure, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(14, 4))
    for split in splits:
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in rows], marker=".", label=split)
        acc_ax.plot(epochs, [100 * row[f"{split}_acc"] for row in rows], marker=".", label=split)
    lr_ax.plot(epochs, [row["lr"] for row in rows], marker=".", color="tab:purple")
    for axis, title in ((loss_ax, "loss"), (acc_ax, "accuracy (%)"), (lr_ax, "learning rate (end of epoch)")):
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    save_figure(figure, path)


def plot_image_grid(images: torch.Tensor, titles: Sequence[str], correct: Sequence[bool], path: Path,
                    columns: int = 8, heading: str = "",
                    variants: Sequence[tuple[torch.Tensor, Path, str]] = ()) -> None:
    """uint8 images (N, 3, H, W) in a grid, each titled in green (right) or red (wrong) above it; each of
    ``variants`` (other pictures of the same images, such as maps laid over them; path; heading) is written as the
    same grid with the same titles."""
    # Drawn with Pillow, not matplotlib: matplotlib lays out and draws each of the 64 titles in about a millisecond
    # and a tight bounding box draws the figure twice (0.2-0.4 s a grid), Pillow the whole grid in a few hundredths;
    # eval draws two grids, eval --explain four.
    count, _, height, width = images.shape
    scale = max(1, round(GRID_SIDE / max(height, width)))
    cell_w, cell_h = width * scale + GRID_GAP, height * scale + GRID_TITLE
    rows = max(1, -(-count // columns))
    sheet = Image.new("RGB", (columns * cell_w, GRID_HEADING + rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (title, right) in enumerate(zip(titles, correct)):
        font = _font_fitting(draw, title, cell_w - 2, GRID_TITLE - 4)
        x = (index % columns) * cell_w + cell_w // 2
        y = GRID_HEADING + (index // columns) * cell_h + GRID_TITLE - 2
        draw.text((x, y), title, fill=matplotlib.colors.to_hex(RIGHT if right else WRONG), font=font, anchor="md")
    for pictures, picture_path, picture_heading in [(images, path, heading), *variants]:
        page = sheet.copy()
        pixels = pictures.permute(0, 2, 3, 1).repeat_interleave(scale, 1).repeat_interleave(scale, 2).numpy()
        for index, picture in enumerate(pixels):
            page.paste(Image.fromarray(picture), ((index % columns) * cell_w + GRID_GAP // 2,
                                                  GRID_HEADING + (index // columns) * cell_h + GRID_TITLE))
        if picture_heading:
            page_draw = ImageDraw.Draw(page)
            page_draw.text((page.width // 2, GRID_HEADING // 2), picture_heading, fill="black", anchor="mm",
                           font=_font_fitting(page_draw, picture_heading, page.width - 8, 22))
        atomic_write(picture_path, lambda f, page=page: page.save(f, format="png"))


GRID_SIDE, GRID_GAP, GRID_TITLE, GRID_HEADING = 128, 24, 18, 40  # pixels: an image's side, the gaps, title heights


def _font_fitting(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> ImageFont.FreeTypeFont:
    """matplotlib's own sans-serif font at ``size`` pixels, smaller where ``text`` would be wider than ``width``."""
    font = _font(size)
    while size > 6 and draw.textlength(text, font=font) > width:
        size -= 1
        font = _font(size)
    return font


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def plot_reliability(report: dict, path: Path, before: dict | None = None) -> None:
    """Accuracy against confidence per bin (``calibration_report``'s bins) with the gap to the diagonal shaded, and
    the bins' image counts below; ``before``: the same at temperature 1, drawn as a line, when calibrated."""
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(5.5, 6.2), sharex=True, height_ratios=(3, 1))
    filled = [row for row in report["bins"] if row["count"]]
    width = report["bins"][0]["upper"] - report["bins"][0]["lower"]
    centres = [(row["lower"] + row["upper"]) / 2 for row in filled]
    axis.bar(centres, [row["accuracy"] for row in filled], width=width, color="tab:blue", edgecolor="white",
             label="accuracy")
    axis.bar(centres, [row["confidence"] - row["accuracy"] for row in filled], bottom=[row["accuracy"] for row in
             filled], width=width, color="tab:red", alpha=0.3, hatch="//", edgecolor="tab:red", label="gap")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    if before is not None:
        shown = [row for row in before["bins"] if row["count"]]
        axis.plot([row["confidence"] for row in shown], [row["accuracy"] for row in shown], marker=".",
                  color="black", linewidth=1, label=f"before scaling (ECE {100 * before['ece']:.2f}%)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_ylabel("accuracy")
    temperature = f", temperature {report['temperature']:.3g}" if report["temperature"] != 1 else ""
    axis.set_title(f"reliability: ECE {100 * report['ece']:.2f}%, MCE {100 * report['mce']:.2f}%{temperature}",
                   fontsize=10)
    axis.legend(fontsize=8, loc="upper left")
    counts.bar(centres, [row["count"] for row in filled], width=width, color="tab:grey", edgecolor="white")
    counts.set_yscale("log")
    counts.set_xlabel("confidence (top-1 probability)")
    counts.set_ylabel("images")
    save_figure(figure, path)


def plot_robustness(report: dict, path: Path) -> None:
    """Accuracy against severity (0: the clean images) for each corruption, one panel per family."""
    families = list(dict.fromkeys(report["families"].values()))
    figure, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), sharey=True, squeeze=False)
    for axis, family in zip(axes[0], families):
        for name, row in report["accuracy"].items():
            if report["families"][name] != family:
                continue
            severities = [0] + [int(s) for s in row]
            marked = " *" if name in report["not_comparable_with_published"] else ""
            axis.plot(severities, [100 * report["clean_accuracy"]] + [100 * a for a in row.values()], marker=".",
                      label=name + marked)
        axis.set_title(family)
        axis.set_xlabel("severity (0: clean)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0, 0].set_ylabel("accuracy (%)")
    figure.suptitle(f"common corruptions: mean corruption accuracy {100 * report['mean_corruption_accuracy']:.2f}%"
                    f" (clean {100 * report['clean_accuracy']:.2f}%)", fontsize=10)
    save_figure(figure, path)


def plot_confusion(matrix: torch.Tensor, class_names: Sequence[str], path: Path) -> None:
    """Confusion matrix (rows: truth, columns: prediction) with counts written in the cells when few classes."""
    size = max(5.0, 0.45 * len(class_names))
    figure, axis = plt.subplots(figsize=(size + 1, size))
    shown = axis.imshow(matrix.numpy(), cmap="Blues")
    figure.colorbar(shown, ax=axis, fraction=0.046)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axis.set_yticks(ticks, class_names, fontsize=7)
    axis.set_xlabel("prediction")
    axis.set_ylabel("truth")
    if len(class_names) <= 20:
        peak = float(matrix.max()) or 1.0
        for i in ticks:
            for j in ticks:
                count = int(matrix[i, j])
                axis.text(j, i, str(count), ha="center", va="center", fontsize=6,
                          color="white" if count > peak / 2 else "black")
    save_figure(figure, path)


def _shown(image: torch.Tensor) -> torch.Tensor:
    """A uint8 (C, H, W) image as matplotlib shows it: (H, W, 3), a single channel repeated."""
    image = image.permute(1, 2, 0)
    return image.expand(-1, -1, 3) if image.shape[2] == 1 else image[..., :3]


def overlaid(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.45) -> torch.Tensor:
    """uint8 images (N, 3, H, W) with their maps (N, H, W, values 0-1) laid over them in the jet colours."""
    colours = torch.from_numpy(matplotlib.colormaps["jet"](maps.clamp(0, 1).numpy())[..., :3]).float()
    blend = (1 - alpha) * images.float() / 255 + alpha * colours.permute(0, 3, 1, 2)
    return (blend * 255).round().clamp(0, 255).to(torch.uint8)


def plot_explanation(image: torch.Tensor, maps: torch.Tensor, titles: Sequence[str], path: Path,
                     heading: str = "") -> None:
    """One row per explained class: the image, its map (0-1) and the map laid over the image; ``titles`` name
    each row's class and probability."""
    rows = len(maps)
    figure, axes = plt.subplots(rows, 3, figsize=(6.6, 2.3 * rows), squeeze=False)
    shown = _shown(image).numpy()
    for row, (heat, title) in enumerate(zip(maps, titles)):
        axes[row, 0].imshow(shown, interpolation="nearest")
        axes[row, 0].set_title(title, fontsize=9)
        axes[row, 1].imshow(heat.numpy(), cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
        axes[row, 1].set_title("map", fontsize=9)
        axes[row, 2].imshow(shown, interpolation="nearest")
        axes[row, 2].imshow(heat.numpy(), cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
        axes[row, 2].set_title("overlay", fontsize=9)
        for axis in axes[row]:
            axis.axis("off")
    if heading:
        figure.suptitle(heading, fontsize=10)
    save_figure(figure, path)


def plot_feature_maps(image: torch.Tensor, stages: Sequence[tuple[str, torch.Tensor]], path: Path) -> None:
    """The image, then one row per stage: its feature maps (K, h, w), each scaled to its own range."""
    columns = max(len(maps) for _, maps in stages)
    figure, axes = plt.subplots(len(stages) + 1, columns, figsize=(1.3 * columns, 1.45 * (len(stages) + 1)),
                                squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes[0, 0].imshow(_shown(image).numpy(), interpolation="nearest")
    axes[0, 0].set_title("input", fontsize=8)
    for row, (name, maps) in enumerate(stages, 1):
        for column, channel in enumerate(maps):
            axes[row, column].imshow(channel.numpy(), cmap="viridis", interpolation="nearest")
        axes[row, 0].set_title(f"{name} {tuple(maps.shape[1:])}", fontsize=8, loc="left")
    save_figure(figure, path)


def plot_filters(kernels: torch.Tensor, path: Path, heading: str = "") -> None:
    """Convolution kernels (N, C, k, k) as small images: RGB for 3 input channels, else their mean, each scaled to
    its own range."""
    count = len(kernels)
    columns = min(16, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(0.6 * columns, 0.6 * rows + 0.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, kernel in enumerate(kernels):
        low, high = kernel.min(), kernel.max()
        scaled = (kernel - low) / (high - low) if high > low else torch.zeros_like(kernel)
        picture = scaled.permute(1, 2, 0).numpy() if kernel.shape[0] == 3 else scaled.mean(0).numpy()
        axes[index // columns, index % columns].imshow(picture, cmap=None if kernel.shape[0] == 3 else "gray",
                                                      interpolation="nearest")
    if heading:
        figure.suptitle(heading, fontsize=9)
    save_figure(figure, path)
