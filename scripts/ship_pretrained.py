"""Ship a finished, calibrated run's weights as pretrained NAME: evaluate them on the full test split, store them in
half precision where that costs no accuracy, measure the model card, copy them into the package
(src/resnet_cifar/pretrained/NAME/) and record them in its manifest.

    python scripts/ship_pretrained.py RUN_FOLDER NAME --data-dir DIR --recipe paper --trained-on "HOST" \\
        --command "THE COMMAND THAT TRAINED IT" --evaluated-on "WHICH TEST IMAGES"

The run must have held out validation images (--val-split) and been calibrated (resnet-cifar calibrate RUN).
A folder without metrics.csv (e.g. weights converted by convert_zero_pad.py) needs --train-minutes.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.model_card import measure_card
from resnet_cifar.inference.pretrained import add_pretrained, half_precision_copy

# Half precision is shipped when it moves the test accuracy by at most this (5 of 10,000 images).
HALF_TOLERANCE = 0.0005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="finished run folder (model.safetensors, model.json, metrics.csv)")
    parser.add_argument("name", help="name users load it by, e.g. resnet20")
    parser.add_argument("--data-dir", required=True, help="folder holding the dataset the run was trained on")
    parser.add_argument("--command", required=True, help="the command that trained the run, for the record")
    parser.add_argument("--recipe", required=True, help="the named recipe it was trained by (paper, default, ...)")
    parser.add_argument("--trained-on", required=True, help="the host that trained it, in words (CPU or GPU)")
    parser.add_argument("--train-minutes", type=float, help="training time, where the folder has no metrics.csv")
    parser.add_argument("--evaluated-on", required=True, help="in words a user understands: which test images "
                        "the accuracy was measured on (e.g. 'the 10,000 CIFAR-10 test images, from a copy stored as '"
                        "'JPEG files')")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        full = evaluate(args.run, data_dir=args.data_dir, out_dir=scratch, download=False)
        half = half_precision_copy(args.run, Path(scratch) / "half")
        halved = evaluate(half, data_dir=args.data_dir, out_dir=scratch, download=False)
        shipped, results = ((half, halved) if abs(halved["accuracy"] - full["accuracy"]) <= HALF_TOLERANCE
                            else (args.run, full))
        print(f"float32 {full['accuracy']:.2%}, float16 {halved['accuracy']:.2%}: shipping "
              f"{'float16' if shipped == half else 'float32'}")
        card = measure_card(shipped, data_dir=args.data_dir, command=args.command, recipe=args.recipe,
                            trained_on=args.trained_on)
        card["storage"] = "float16" if shipped == half else "float32"
        minutes = args.train_minutes
        if minutes is None:
            with open(args.run / "metrics.csv") as f:
                minutes = float(list(csv.DictReader(f))[-1]["elapsed_seconds"]) / 60
        entry = add_pretrained(shipped, args.name, test_accuracy=results["accuracy"],
                               evaluated_on=args.evaluated_on, train_minutes=minutes, command=args.command,
                               card=card)
    print(json.dumps({args.name: entry}, indent=2))


if __name__ == "__main__":
    main()
