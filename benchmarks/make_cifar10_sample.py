"""Rebuild the CIFAR-10 sample bundled in the package (1,000 train + 500 test images, balanced over classes).

    python benchmarks/make_cifar10_sample.py DATA_DIR   # DATA_DIR holds cifar-10-batches-py/

DATA_DIR comes from ../shared/data (see its README). The selection is seeded, so the file is reproducible.
"""
from __future__ import annotations

import lzma
import sys
from pathlib import Path

import numpy as np

from resnet_cifar.data.cifar import read_cifar

TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 50
OUT = Path(__file__).resolve().parents[1] / "src/resnet_cifar/data/assets/cifar10-sample.npz.xz"


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` images of each class, chosen at random, in class order."""
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in range(int(labels.max()) + 1)])


def main(data_dir: str) -> None:
    rng = np.random.default_rng(0)
    train, test = read_cifar("cifar10", Path(data_dir), "train"), read_cifar("cifar10", Path(data_dir), "test")
    arrays = {}
    for split, data, per_class in (("train", train, TRAIN_PER_CLASS), ("test", test, TEST_PER_CLASS)):
        images, labels = data.images.numpy(), data.labels.numpy()
        idx = balanced(labels, per_class, rng)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[idx], labels[idx].astype(np.uint8)
    arrays["class_names"] = np.array(train.class_names)
    with lzma.open(OUT, "wb", preset=9) as f:
        np.savez(f, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1])
