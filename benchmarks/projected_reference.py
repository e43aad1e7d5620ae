"""A long recipe's wall time on this machine, from a few of its epochs timed here, as a time-to-accuracy baseline.

    python benchmarks/projected_reference.py CALIBRATION_RUN/metrics.csv... --final-acc 0.8768 --epochs 164 --out FILE

A baseline recipe's full run (the paper's 164 epochs took 93 min on the faster AVX-512 host of session 4, the
seeds' 50 epochs 27 min) is too long to repeat beside every new recipe, and its accuracy per epoch does not depend
on the host, its time does. So the same recipe (the paper's: `resnet-cifar train --model resnet20 --batch-size 128
--lr 0.1 --weight-decay 1e-4 --no-nesterov --schedule multistep --milestones 82 123 --epochs 164 --label-smoothing
0 --channels-last`; the seeds': `resnet-cifar train --recipe seeds-sgd --model resnet20 --channels-last`) is timed
for a few epochs on the machine of the comparison (before and after it, say, as the host's speed drifts), and its
whole run is projected: the mean wall seconds of all those epochs (each run's first, with its start-up, included)
times ``--epochs``. FILE is a baseline report for ``time_to_accuracy.py``: one row, the recipe's final accuracy
(from its full run, given as ``--final-acc``) at the projected time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from time_to_accuracy import read_metrics, wall_seconds


def projected_report(calibrations: list[list[dict]], final_acc: float, epochs: int) -> dict:
    """A one-row baseline report: ``final_acc`` after ``epochs`` epochs of the calibration runs' mean duration."""
    timed = sum(len(rows) for rows in calibrations)
    seconds_per_epoch = sum(wall_seconds(rows[-1]) for rows in calibrations) / timed
    seconds = seconds_per_epoch * epochs
    return {"epochs": epochs, "seconds_per_epoch": seconds_per_epoch, "calibration_epochs": timed,
            "rows": [{"epoch": epochs, "test_acc": final_acc, "wall_seconds": seconds, "elapsed_seconds": seconds}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calibration", type=Path, nargs="+", help="metrics.csv of a few epochs of the recipe, "
                        "timed here (several runs: all their epochs count)")
    parser.add_argument("--final-acc", type=float, required=True, help="the full run's final test accuracy (0-1)")
    parser.add_argument("--epochs", type=int, required=True, help="the full run's epochs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0 < args.final_acc <= 1:
        parser.error(f"--final-acc is a fraction between 0 and 1, got {args.final_acc}")
    report = projected_report([read_metrics(path) for path in args.calibration], args.final_acc, args.epochs)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['seconds_per_epoch']:.1f} s per epoch over {report['calibration_epochs']} epochs: "
          f"{args.epochs} epochs = {report['rows'][0]['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
