"""Do the maps point at what the model uses? Deletion curves on test images: delete the pixels a map ranks most
important first (replaced by the split's mean colour), in equal steps, and follow the probability of the class
the model predicted on the untouched image; against the same with a random order. A faithful map makes the
probability fall faster than a random order: a smaller area under the curve (AUC, the mean probability over the
fraction deleted from 0 to 1).

    python benchmarks/explain_faithfulness.py (SOURCE | --pretrained NAME) --data-dir DATA_DIR [--images 1000]
        [--steps 16] [--methods gradcam gradcam++ saliency integrated-gradients] [--json OUT.json] [--figure OUT.png]

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


def deletion_curves(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, order: torch.Tensor,
                    fill: torch.Tensor, steps: int) -> torch.Tensor:
    """The target class's probability (N, steps + 1) as the pixels are deleted in ``order`` ((N, H*W), most
    important first), ``steps`` equal parts at a time, each replaced by ``fill`` (1, C, H, W)."""
    count, _, height, width = images.shape
    pixels = height * width
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=order.device).expand(count, -1))  # each pixel's place
    curves = []
    with torch.no_grad():
        for step in range(steps + 1):
            deleted = (rank < round(step * pixels / steps)).view(count, 1, height, width)
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
    chosen = data.spread(args.images)
    mean_colour = data.images.float().mean((0, 2, 3)).round().to(torch.uint8)
    fill = trained.normalised(mean_colour[None, :, None, None].expand(1, -1, *data.images.shape[-2:]).contiguous())
    generator = torch.Generator().manual_seed(args.seed)
    curves: dict[str, list[torch.Tensor]] = {name: [] for name in [*args.methods, RANDOM]}
    seconds = {name: 0.0 for name in curves}
    correct = 0
    for start in range(0, len(chosen), args.batch_size):
        batch = chosen.subset(torch.arange(start, min(start + args.batch_size, len(chosen))))
        images = trained.normalised(batch)
        with torch.no_grad():
            targets = model(images).argmax(1)
        correct += int((targets.cpu() == batch.labels).sum())
        jitter = torch.rand(len(images), images.shape[-2] * images.shape[-1], generator=generator)
        for name in curves:
            began = time.perf_counter()
            if name == RANDOM:
                scores = jitter
            else:
                maps = explain(model, images, method=name, targets=targets[:, None]).maps[:, 0]
                scores = maps.flatten(1) + 1e-6 * jitter  # ties broken at random
            order = scores.argsort(1, descending=True).to(images.device)
            curves[name].append(deletion_curves(model, images, targets, order, fill, args.steps).cpu())
            seconds[name] += time.perf_counter() - began
        print(f"{start + len(images)}/{len(chosen)} images", flush=True)
    results = {"source": str(source.path) if source.path else args.pretrained, "model": trained.info.get("model"),
               "images": len(chosen), "accuracy": correct / len(chosen), "steps": args.steps, "seed": args.seed,
               "device": str(images.device), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
               "methods": {}}
    for name, parts in curves.items():
        joined = torch.cat(parts)
        areas = area(joined)
        results["methods"][name] = {"auc": float(areas.mean()), "auc_stderr": float(areas.std() / len(areas) ** 0.5),
                                    "below_random": float((areas < area(torch.cat(curves[RANDOM]))).float().mean()),
                                    "mean_curve": joined.mean(0).tolist(), "seconds": seconds[name]}
    print(json.dumps({name: {key: row[key] for key in ("auc", "auc_stderr", "below_random")}
                      for name, row in results["methods"].items()}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.figure:
        plot(results, args.figure)


def plot(results: dict, path: Path) -> None:
    """Mean probability of the predicted class against the fraction of pixels deleted, one line per order."""
    figure, axis = plt.subplots(figsize=(6, 4))
    fractions = torch.linspace(0, 1, results["steps"] + 1)
    for name, row in results["methods"].items():
        axis.plot(fractions, row["mean_curve"], label=f"{name} (AUC {row['auc']:.3f})",
                  linestyle="--" if name == RANDOM else "-", color="black" if name == RANDOM else None)
    axis.set_xlabel("fraction of pixels deleted (most important first)")
    axis.set_ylabel("probability of the predicted class")
    axis.set_title(f"deletion curves: {results['model']}, {results['images']} test images", fontsize=10)
    axis.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
