"""CIFAR-10/100 in the official "python version" folders, read through a restricted unpickler."""
from __future__ import annotations

import functools
import hashlib
import io
import math
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct  # numpy 2
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

from ..errors import ResnetCifarError
from .download import download_archive
from .imageset import ImageSet


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how to check it (sums of the official files, as published)."""

    folder: str
    url: str
    archive_md5: str
    train_files: dict[str, str]
    test_files: dict[str, str]
    meta_file: tuple[str, str]
    label_key: str
    names_key: str


CIFAR = {
    "cifar10": CifarSpec(
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        train_files={"data_batch_1": "c99cafc152244af753f735de768cd75f",
                     "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                     "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                     "data_batch_4": "634d18415352ddfa80567beed471001a",
                     "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb"},
        test_files={"test_batch": "40351d587109b95175f43aff81a1287e"},
        meta_file=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        label_key="labels", names_key="label_names"),
    "cifar100": CifarSpec(
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files={"train": "16019d7e3df5f24257cddd939b257f8d"},
        test_files={"test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
        meta_file=("meta", "7973b15100ade9c7d40fb424638fde48"),
        label_key="fine_labels", names_key="fine_label_names"),
}

# What the CIFAR pickles are allowed to build: numpy arrays and their dtypes, nothing else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: builds bytes from a str, nothing else
}


# The largest official batch file (CIFAR-100's train, 50,000 x 3,072 bytes plus labels) is 155 MiB; no array in
# one holds more elements than its pixels.
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
MAX_ARRAY_ELEMENTS = 50_000 * 3 * 32 * 32


def _require_small(shape: object) -> None:
    """Refuse an array shape over ``MAX_ARRAY_ELEMENTS`` before anything is allocated for it."""
    dims = shape if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(d, (int, np.integer)) and 0 <= d <= MAX_ARRAY_ELEMENTS for d in dims) \
            or math.prod(int(d) for d in dims) > MAX_ARRAY_ELEMENTS:
        raise pickle.UnpicklingError(f"an array of shape {shape} is larger than any in a CIFAR batch")


class _BoundedArray(np.ndarray):
    """``numpy.ndarray`` as the pickles may name it: as the type of rebuilt arrays, or called with a small shape."""

    def __new__(cls, shape: object, *args: object, **kwargs: object) -> np.ndarray:
        _require_small(shape)
        return super().__new__(cls, shape, *args, **kwargs)


def _bounded_reconstruct(subtype: type, shape: object, dtype: object) -> np.ndarray:
    _require_small(shape)
    return _numpy_reconstruct(subtype, shape, dtype)


_BOUNDED = {"ndarray": _BoundedArray, "_reconstruct": _bounded_reconstruct}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, bytes, numbers and numpy arrays of at most a CIFAR batch's size; refuses
    every other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            if name in _BOUNDED:
                return _BOUNDED[name]
            return getattr(sys.modules.get(module) or __import__(module, fromlist=[name]), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch file")


def safe_unpickle(path: Path) -> dict:
    """Load one CIFAR batch file through ``RestrictedUnpickler``; any failure is a one-line error.

    The file is read whole first (it must be no larger than an official one), so that a length the pickle claims
    is checked against what is really there before anything is allocated for it.
    """
    size = path.stat().st_size
    if size > MAX_BATCH_FILE_BYTES:
        raise ResnetCifarError(f"{path} is larger than any CIFAR batch file ({size} bytes); delete it and download "
                               f"the dataset again")
    try:
        content = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, MemoryError, OverflowError) as error:
        raise ResnetCifarError(f"{path} is not a readable CIFAR batch file ({error}); delete it and "
                               f"download the dataset again") from None
    if not isinstance(content, dict):
        raise ResnetCifarError(f"{path} is not a CIFAR batch file (holds {type(content).__name__}, not a dict)")
    return content


def md5sum(path: Path) -> str:
    """Hex MD5 digest of a file (the checksum the CIFAR site publishes)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cifar_folder(name: str, root: Path, download: bool = True) -> Path:
    """The dataset's folder under ``root``; fetched from the official site when missing and ``download``."""
    spec = CIFAR[name]
    folder = root / spec.folder
    expected = [*spec.train_files, *spec.test_files, spec.meta_file[0]]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing and download:
        download_archive(spec.url, spec.archive_md5, root)
        missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        what = f"{folder} lacks {', '.join(missing)}" if folder.is_dir() else f"there is no {folder}"
        raise ResnetCifarError(f"{what}: put the official '{spec.folder}' folder (from {spec.url}) under "
                               f"--data-dir, or pick --dataset cifar10-sample")
    return folder


def check_official_sums(name: str, folder: Path) -> list[str]:
    """Names of the files in ``folder`` whose MD5 differs from the official release."""
    spec = CIFAR[name]
    official = {**spec.train_files, **spec.test_files, spec.meta_file[0]: spec.meta_file[1]}
    return [f for f, md5 in official.items() if _cached_md5(folder / f, _signature(folder / f)) != md5]


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _cached_md5(path: Path, signature: tuple[int, int]) -> str:
    # Train and test are loaded one after the other: hash the 178 MB once per unchanged file, not twice.
    return md5sum(path)


def read_cifar(name: str, root: Path, split: str, download: bool = True) -> ImageSet:
    """The ``train`` or ``test`` split of ``cifar10`` or ``cifar100`` under ``root``."""
    spec = CIFAR[name]
    folder = cifar_folder(name, root, download)
    meta = safe_unpickle(folder / spec.meta_file[0])
    class_names = _field(meta, spec.names_key, folder / spec.meta_file[0])
    if not (isinstance(class_names, list) and class_names and all(isinstance(n, (str, bytes)) for n in class_names)):
        raise ResnetCifarError(f"{folder / spec.meta_file[0]} has no list of class names under '{spec.names_key}'")
    class_names = [n.decode("latin1") if isinstance(n, bytes) else n for n in class_names]
    images, labels = [], []
    for file in spec.train_files if split == "train" else spec.test_files:
        batch = safe_unpickle(folder / file)
        data = np.asarray(_field(batch, "data", folder / file))
        batch_labels = np.asarray(_field(batch, spec.label_key, folder / file))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch_labels) != len(data):
            raise ResnetCifarError(f"{folder / file} holds data of shape {data.shape} ({data.dtype}) and "
                                   f"{len(batch_labels)} labels; expected uint8 N x 3072 and N labels")
        if not (np.issubdtype(batch_labels.dtype, np.integer) and batch_labels.ndim == 1):
            raise ResnetCifarError(f"{folder / file} holds labels of type {batch_labels.dtype}, not whole numbers: "
                                   f"it is not a CIFAR batch file")
        images.append(np.asarray(data).reshape(-1, 3, 32, 32))
        labels.append(batch_labels.astype(np.int64))
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                    list(class_names))


def _field(content: dict, key: str, path: Path) -> object:
    if key not in content:
        raise ResnetCifarError(f"{path} has no '{key}' entry: it is not a CIFAR batch file of this dataset")
    return content[key]
