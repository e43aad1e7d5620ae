"""Do the maps point at what the model uses? Deletion curves on test images: delete the pixels a map ranks most
important first (replaced by the split's mean colour), in equal steps, and follow the probability of the class
the model predicted on the untouched image; against the same with a random order. A faithful map makes the
probability fall faster than a random order: a smaller area under the curve (AUC, the mean probability over the
fraction deleted from 0 to 1); deleting the least important first, the probability should stay up longer than
with a random order (a larger AUC).

    python benchmarks/explain_faithfulness.py (SOURCE | --pretrained NAME) --data-dir DATA_DIR [--images 1000]
        [--steps 16] [--patch 1] [--methods gradcam gradcam++ saliency integrated-gradients]
        [--json OUT.json] [--figure OUT.png]

SOURCE is what ``resnet-cifar eval`` takes (a run folder, weights). The images are spread evenly over the test
split; ties in a map (Grad-CAM is zero wherever its ReLU cut) are broken at random, with the same seed as the
random order. Every map is the method's default (Grad-CAM: the default layer; integrated gradients: captum's, 32
steps).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resnet_cifar.core.device import resolve_device  # noqa: E402
from resnet_cifar.core.source import resolve_source  # noqa: E402
from resnet_cifar.data import load_dataset  # noqa: E402
from resnet_cifar.inference.explain import METHODS, explain  # noqa: E402
from resnet_cifar.inference.loading import load_trained_model  # noqa: E402

RANDOM = "random"
MOST_FIRST, LEAST_FIRST = "most important first", "least important first"


def deletion_ranks(scores: torch.Tensor, patch: int) -> torch.Tensor:
    """Each pixel's place (N, H, W) in the deletion order of ``scores`` (N, H, W; highest first): by pixel, or with
    ``patch`` > 1 by square patches of that side (a patch's score: its pixels' mean), every pixel of a patch
    sharing the patch's place."""
    count, height, width = scores.shape
    pooled = F.avg_pool2d(scores[:, None], patch)[:, 0] if patch > 1 else scores
    order = pooled.flatten(1).argsort(1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand(count, -1))
    rank = rank.view(pooled.shape)
    return rank.repeat_interleave(patch, 1).repeat_interleave(patch, 2) if patch > 1 else rank


def deletion_curves(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, rank: torch.Tensor,
                    fill: torch.Tensor, steps: int) -> torch.Tensor:
    """The target class's probability (N, steps + 1) as the pixels are deleted in the order of ``rank`` (N, H, W),
    ``steps`` equal parts at a time, each replaced by ``fill`` (1, C, H, W)."""
    places = int(rank.max()) + 1
    curves = []
    with torch.no_grad():
        for step in range(steps + 1):
            deleted = (rank < round(step * places / steps))[:, None]
            logits = model(torch.where(deleted, fill, images))
            curves.append(F.softmax(logits.float(), 1).gather(1, targets[:, None])[:, 0])
    return torch.stack(curves, 1)


def area(curves: torch.Tensor) -> torch.Tensor:
    """Each curve's area over the fraction deleted, 0 to 1 (trapezoids)."""
    return torch.trapezoid(curves, dx=1 / (curves.shape[1] - 1), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?")
    parser.add_argument("--pretrained")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--patch", type=int, default=1, help="delete square patches of this side (default: pixels)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    source = resolve_source(args.source, args.pretrained)
    trained = load_trained_model(source, resolve_device(args.device))
    trained.require_gradients("the maps need a PyTorch model")
    model = trained.model.eval()
    data = load_dataset(args.dataset, "test", args.data_dir, image_size=trained.input_size[1:],
                        class_names=trained.class_names, download=False)
    if data.images.shape[-1] % args.patch or data.images.shape[-2] % args.patch:
        parser.error(f"--patch {args.patch} does not divide the images' {tuple(data.images.shape[-2:])} pixels")
    chosen = data.spread(args.images)
    mean_colour = data.images.float().mean((0, 2, 3)).round().to(torch.uint8)
    fill = trained.normalised(mean_colour[None, :, None, None].expand(1, -1, *data.images.shape[-2:]).contiguous())
    generator = torch.Generator().manual_seed(args.seed)
    names = [*args.methods, RANDOM]
    curves: dict[tuple[str, str], list[torch.Tensor]] = {}
    seconds = dict.fromkeys(names, 0.0)
    correct = 0
    for start in range(0, len(chosen), args.batch_size):
        batch = chosen.subset(torch.arange(start, min(start + args.batch_size, len(chosen))))
        images = trained.normalised(batch)
        with torch.no_grad():
            targets = model(images).argmax(1)
        correct += int((targets.cpu() == batch.labels).sum())
        jitter = torch.rand(len(images), *images.shape[-2:], generator=generator)
        for name in names:
            began = time.perf_counter()
            if name == RANDOM:
                orders = {MOST_FIRST: jitter}
            else:
                maps = explain(model, images, method=name, targets=targets[:, None]).maps[:, 0]
                scores = maps + 1e-6 * jitter  # ties broken at random
                orders = {MOST_FIRST: scores, LEAST_FIRST: -scores}
            for order, ranked in orders.items():
                rank = deletion_ranks(ranked, args.patch).to(images.device)
                curves.setdefault((name, order), []).append(
                    deletion_curves(model, images, targets, rank, fill, args.steps).cpu())
            seconds[name] += time.perf_counter() - began
        print(f"{start + len(images)}/{len(chosen)} images", flush=True)
    results = {"source": str(source.path) if source.path else args.pretrained, "model": trained.info.get("model"),
               "images": len(chosen), "accuracy": correct / len(chosen), "steps": args.steps, "patch": args.patch,
               "seed": args.seed, "device": str(images.device), "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d"), "methods": {name: {"seconds": seconds[name]} for name in names}}
    random_areas = area(torch.cat(curves[RANDOM, MOST_FIRST]))
    for (name, order), parts in curves.items():
        joined = torch.cat(parts)
        areas = area(joined)
        beats = areas < random_areas if order == MOST_FIRST else areas > random_areas
        results["methods"][name][order] = {
            "auc": float(areas.mean()), "auc_stderr": float(areas.std() / len(areas) ** 0.5),
            "difference_from_random": float((areas - random_areas).mean()),
            "difference_stderr": float((areas - random_areas).std() / len(areas) ** 0.5),
            "images_better_than_random": float(beats.float().mean()), "mean_curve": joined.mean(0).tolist()}
    print(json.dumps({name: {order: {key: round(value, 4) for key, value in row[order].items() if key != "mean_curve"}
                             for order in (MOST_FIRST, LEAST_FIRST) if order in row}
                      for name, row in results["methods"].items()}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.figure:
        plot(results, args.figure)


def plot(results: dict, path: Path) -> None:
    """Mean probability of the predicted class against the fraction deleted: most important first, least first."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    fractions = torch.linspace(0, 1, results["steps"] + 1)
    for axis, order in zip(axes, (MOST_FIRST, LEAST_FIRST)):
        for name, row in results["methods"].items():
            shown = row.get(order) or row[MOST_FIRST]  # random: one order
            axis.plot(fractions, shown["mean_curve"], label=f"{name} (AUC {shown['auc']:.3f})",
                      linestyle="--" if name == RANDOM else "-", color="black" if name == RANDOM else None)
        axis.set_xlabel(f"fraction of {'pixels' if results['patch'] == 1 else 'patches'} deleted, {order}")
        axis.legend(fontsize=8)
    axes[0].set_ylabel("probability of the predicted class")
    unit = "pixel" if results["patch"] == 1 else f"{results['patch']}x{results['patch']} patch"
    figure.suptitle(f"deletion curves, {unit} by {unit}: {results['model']}, {results['images']} test images",
                    fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
