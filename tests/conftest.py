"""Shared test helpers."""
from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Test processes run side by side (pytest -n): one CPU thread each, and for the processes they start, as
    # more threads than CPUs make every one of them many times slower (core/threads.py).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "resnet_cifar", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/x.py")``: import a repository script (not part of the package) as a module; its
    folder is on the import path while it loads, as when it runs, so it can import the scripts beside it."""
    def load(relative: str) -> ModuleType:
        path = REPO / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        return module

    return load


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(*args, cwd=None)``: run ``python -m resnet_cifar ARGS`` in a subprocess, return the process."""
    return _run_cli


def write_fake_cifar(root: Path, name: str = "cifar10", train_images: int = 50, test_images: int = 20) -> Path:
    """A small folder in the official CIFAR python layout (random pixels, balanced labels); returns root."""
    rng = np.random.default_rng(0)
    classes = 10 if name == "cifar10" else 100

    def batch(count: int, label_key: str) -> dict:
        return {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                label_key: [i % classes for i in range(count)], "batch_label": "fake"}

    def dump(obj: dict, path: Path) -> None:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for i in range(5):
            dump(batch(train_images // 5, "labels"), folder / f"data_batch_{i + 1}")
        dump(batch(test_images, "labels"), folder / "test_batch")
        dump({"label_names": [f"class{i}" for i in range(10)]}, folder / "batches.meta")
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        dump(batch(train_images, "fine_labels"), folder / "train")
        dump(batch(test_images, "fine_labels"), folder / "test")
        dump({"fine_label_names": [f"fine{i}" for i in range(100)]}, folder / "meta")
    return root


def save_image(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB", seed: int = 0) -> Path:
    """A random image of ``size`` (W, H) and PIL ``mode`` saved at ``path`` (format from the suffix)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def write_sample_folder(root: Path, train_per_class: int = 20, test_per_class: int = 10) -> Path:
    """The first images of each class of the bundled sample as an ImageFolder tree (root/train|test/<class>/*.png):
    real pictures in small numbers, for runs that test mechanics, not learning (with --image-size 16, tiny)."""
    from resnet_cifar.data import load_dataset

    for split, count in (("train", train_per_class), ("test", test_per_class)):
        data = load_dataset("cifar10-sample", split)
        for label, name in enumerate(data.class_names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for number, index in enumerate((data.labels == label).nonzero().flatten()[:count].tolist()):
                Image.fromarray(data.images[index].permute(1, 2, 0).numpy()).save(folder / f"{number}.png")
    return root


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory) -> Path:
    """``write_sample_folder``'s tree: 200 training and 100 test images of the ten CIFAR-10 classes."""
    return write_sample_folder(tmp_path_factory.mktemp("sample-folder"))


@pytest.fixture
def fake_cifar():
    """``fake_cifar(root, name="cifar10", train_images=50, test_images=20)``: write a small CIFAR folder."""
    return write_fake_cifar


@pytest.fixture(scope="session")
def make_image():
    """``make_image(path, size=(W, H), mode="RGB", seed=0)``: save a random image, return its path."""
    return save_image
