"""Ship a finished run's weights as pretrained NAME: evaluate them on the full test split, copy them into the
package (src/resnet_cifar/pretrained/NAME/) and record them in its manifest.

    python scripts/ship_pretrained.py RUN_FOLDER NAME --data-dir DIR --command "THE COMMAND THAT TRAINED IT"

A folder without metrics.csv (e.g. weights converted by convert_zero_pad.py) needs --train-minutes.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from resnet_cifar.inference.evaluate import evaluate
from resnet_cifar.inference.pretrained import add_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="finished run folder (model.safetensors, model.json, metrics.csv)")
    parser.add_argument("name", help="name users load it by, e.g. resnet20")
    parser.add_argument("--data-dir", required=True, help="folder holding the dataset the run was trained on")
    parser.add_argument("--command", required=True, help="the command that trained the run, for the record")
    parser.add_argument("--train-minutes", type=float, help="training time, where the folder has no metrics.csv")
    parser.add_argument("--evaluated-on", required=True, help="in words a user understands: which test images "
                        "the accuracy was measured on (e.g. 'the 10,000 CIFAR-10 test images, from a copy stored as '"
                        "'JPEG files')")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = evaluate(args.run, data_dir=args.data_dir, split="test", out_dir=scratch, download=False)
    minutes = args.train_minutes
    if minutes is None:
        with open(args.run / "metrics.csv") as f:
            minutes = float(list(csv.DictReader(f))[-1]["elapsed_seconds"]) / 60
    entry = add_pretrained(args.run, args.name, test_accuracy=results["accuracy"], evaluated_on=args.evaluated_on,
                           train_minutes=minutes, command=args.command)
    print(json.dumps({args.name: entry}, indent=2))


if __name__ == "__main__":
    main()
