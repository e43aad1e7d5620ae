"""The small real CIFAR-10 sample shipped inside the package (1,000 train + 500 test images)."""
from __future__ import annotations

import io
import lzma
from importlib import resources

import numpy as np
import torch

from .imageset import ImageSet

SAMPLE_FILE = "cifar10-sample.npz.xz"


def read_sample(split: str) -> ImageSet:
    """The ``train`` (100 per class) or ``test`` (50 per class) split of the bundled sample."""
    raw = resources.files("resnet_cifar.data").joinpath("assets", SAMPLE_FILE).read_bytes()
    with np.load(io.BytesIO(lzma.decompress(raw)), allow_pickle=False) as arrays:
        return ImageSet(torch.from_numpy(arrays[f"{split}_images"]),
                        torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64)),
                        [str(n) for n in arrays["class_names"]])
