"""Convert a model saved with option A's old zero-pad layout ("end", resnet-cifar before model format 2) into the
same function with the reference layout ("split"), and check on random inputs that both give the same logits.

    python scripts/convert_zero_pad.py SOURCE OUT   # SOURCE: a run or model folder; OUT gets model.safetensors,
                                                    # model.json (format 2) and metrics.csv if SOURCE has one
Old folders need no conversion to be used (their layout is read from their format); this makes them the default
layout, e.g. for the shipped weights.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from resnet_cifar.core.checkpoint import export_model, read_model_files
from resnet_cifar.models import create_model
from resnet_cifar.models.layouts import convert_zero_pad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    weights, info = read_model_files(args.source)
    options = dict(info["model_options"])
    layout = options.pop("zero_pad", None)
    if layout != "end":
        raise SystemExit(f"{args.source} has no option A shortcuts in the old layout (zero_pad: {layout})")
    name, classes = info["model"], info["num_classes"]
    converted = convert_zero_pad(weights, name, "end", "split", num_classes=classes, **options)
    old = create_model(name, num_classes=classes, zero_pad="end", **options).eval()
    new = create_model(name, num_classes=classes, zero_pad="split", **options).eval()
    old.load_state_dict(weights)
    new.load_state_dict(converted)
    with torch.no_grad():
        images = torch.randn(64, *info["input_size"], generator=torch.Generator().manual_seed(0))
        reference, found = old(images), new(images)
    gap = (found - reference).abs().max().item()
    if not torch.equal(found.argmax(1), reference.argmax(1)) or gap > 1e-4 * reference.abs().max().item():
        raise SystemExit(f"the converted model differs (largest logit gap {gap:g})")
    info = {key: value for key, value in info.items() if key != "format_version"}
    info["model_options"] = {**options, "zero_pad": "split"}
    args.out.mkdir(parents=True, exist_ok=True)
    export_model(args.out, converted, info)
    if (args.source / "metrics.csv").is_file():
        shutil.copy(args.source / "metrics.csv", args.out / "metrics.csv")
    print(f"{args.out}: {name} with zero_pad split; largest logit gap on 64 random inputs {gap:.2e}")


if __name__ == "__main__":
    main()
