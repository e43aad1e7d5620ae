"""Peak memory of ``resnet-cifar explain`` against the number of images: the command as a user runs it, on folders of
N copies of the bundled example images, each N in a process of its own (its peak resident set, from getrusage).

    python benchmarks/explain_memory.py [--counts 100 4000] [--threads 2] [--json OUT.json]

``explain`` decodes and explains a fixed number of images at a time and writes ``explain.json`` entry by entry, so
its peak should not grow with N (issue 50: within 1.5x of the peak at 100 images for 4,000).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from resnet_cifar.core.device import cpu_description

EXAMPLES = Path(__file__).resolve().parents[1] / "src/resnet_cifar/data/assets/examples"
# Runs the command in this process and prints its peak resident set (KiB) last, so that only this run counts.
# The peak is VmHWM, that of this process's own memory: getrusage's ru_maxrss keeps the parent's peak across exec.
PROBE = ("import re, sys\nfrom pathlib import Path\nfrom resnet_cifar.cli import main\ncode = main(sys.argv[1:])\n"
         "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1), flush=True)\n"
         "sys.exit(code)\n")


def image_folder(root: Path, count: int) -> Path:
    """``count`` PNG files cycling through the example images, under distinct names."""
    folder = root / f"images-{count}"
    folder.mkdir()
    examples = sorted(EXAMPLES.iterdir())
    for number in range(count):
        source = examples[number % len(examples)]
        (folder / f"{source.stem}{number:05d}.png").write_bytes(source.read_bytes())
    return folder


def measure(count: int, root: Path, threads: int) -> dict[str, float]:
    folder = image_folder(root, count)
    command = [sys.executable, "-c", PROBE, "explain", "--pretrained", "resnet20", str(folder), "--out",
               str(root / f"out-{count}"), "--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    written = json.loads((root / f"out-{count}" / "explain.json").read_text())
    assert len(written["images"]) == count, "explain.json does not list every image"
    return {"images": count, "peak_mib": int(done.stdout.split()[-1]) / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 4000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(count, Path(scratch), args.threads) for count in args.counts]
    for row in rows:
        print(f"{row['images']:>6} images: peak {row['peak_mib']:7.1f} MiB, {row['seconds']:7.1f} s")
    ratio = rows[-1]["peak_mib"] / rows[0]["peak_mib"]
    print(f"peak at {rows[-1]['images']} images / at {rows[0]['images']}: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"date": date.today().isoformat(), "cpu": cpu_description(),
                                         "threads": args.threads, "torch": torch.__version__, "rows": rows,
                                         "peak_ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
