"""Corrupted copies of a split, made once and kept on disk under the data folder: one raw uint8 file per
corruption and severity, with its SHA-256 beside it (``NAME-SEVERITY.u8.sha256``: no shared index, so processes
filling the cache side by side never overwrite each other's records). A file whose size or checksum no longer
matches is refused with a notice and made again; nothing in the cache is ever unpickled or trusted for its size."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..files import atomic_write_bytes
from ..log import notice
from .corruptions import corrupt
from .imageset import ImageSet

CACHE_VERSION = 1  # raised whenever a corruption's output changes, so older files are never mixed in
# Images corrupted at a time: bounds the floats the blurs and warps hold (about 25 MB per 1,000 CIFAR images).
CHUNK = 1000


def cache_folder(data_dir: str | Path, clean: ImageSet, seed: int) -> Path:
    """Where the corrupted copies of ``clean`` for ``seed`` live: named by a hash of its pixels, so two splits or
    datasets never share files."""
    digest = hashlib.sha256(clean.images.numpy().tobytes()).hexdigest()[:16]
    return Path(data_dir) / "corrupted" / f"{digest}-seed{seed}-v{CACHE_VERSION}"


def corrupted_set(clean: ImageSet, name: str, severity: int, *, data_dir: str | Path, seed: int = 0) -> ImageSet:
    """``clean`` with corruption ``name`` at ``severity``: read from the cache when its checksum holds, else made
    (in chunks, each chunk's seed derived from ``seed``) and written there atomically."""
    path = cache_folder(data_dir, clean, seed) / f"{name}-{severity}.u8"
    shape = (len(clean), *clean.images.shape[2:], clean.images.shape[1])  # N, H, W, C
    cached = _read_checked(path, _record(path), int(np.prod(shape)))
    if cached is None:
        cached = _make(_pictures(clean), path, name, severity, seed)
    images = torch.from_numpy(np.frombuffer(cached, dtype=np.uint8).reshape(shape).copy()).permute(0, 3, 1, 2)
    return ImageSet(images.contiguous(), clean.labels, clean.class_names)


def _pictures(clean: ImageSet) -> np.ndarray:
    return np.ascontiguousarray(clean.images.permute(0, 2, 3, 1).numpy())


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _make(pictures: np.ndarray, path: Path, name: str, severity: int, seed: int) -> bytes:
    """The corrupted images (NumPy only: safe in a forked worker) written to ``path`` with their SHA-256."""
    made = np.concatenate([corrupt(pictures[start:start + CHUNK], name, severity, seed * 1_000_003 + start)
                           for start in range(0, len(pictures), CHUNK)]).tobytes()
    atomic_write_bytes(path, made)
    atomic_write_bytes(_record(path), hashlib.sha256(made).hexdigest().encode())
    return made


def fill_cache(clean: ImageSet, pairs: list[tuple[str, int]], *, data_dir: str | Path, seed: int = 0,
               workers: int | None = None) -> Iterator[tuple[str, int]]:
    """Make the corrupted sets of ``pairs`` (name, severity) not yet in the cache, ``workers`` processes at a time
    (default: one per CPU; the corruptions are single-threaded NumPy), yielding each pair as it is done."""
    folder = cache_folder(data_dir, clean, seed)
    missing = [(name, severity) for name, severity in pairs if not _record(folder / f"{name}-{severity}.u8").is_file()]
    pictures = _pictures(clean)
    workers = min(workers or os.cpu_count() or 1, len(missing))
    if workers <= 1:
        for name, severity in missing:
            _make(pictures, folder / f"{name}-{severity}.u8", name, severity, seed)
            yield name, severity
        return
    # forked workers share the clean pictures instead of each receiving a pickled copy; they run NumPy only
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_remember, initargs=(pictures,)) as pool:
        done = {pool.submit(_make_one, folder / f"{name}-{severity}.u8", name, severity, seed): (name, severity)
                for name, severity in missing}
        for future in as_completed(done):
            future.result()
            yield done[future]


_PICTURES: list[np.ndarray] = []  # a worker's clean pictures (fill_cache)


def _remember(pictures: np.ndarray) -> None:
    _PICTURES[:] = [pictures]


def _make_one(path: Path, name: str, severity: int, seed: int) -> None:
    _make(_PICTURES[0], path, name, severity, seed)


def _read_checked(path: Path, record: Path, size: int) -> bytes | None:
    """The file's bytes if it has exactly ``size`` of them and the SHA-256 recorded beside it; else None (with a
    notice when a file was there but changed)."""
    if not path.exists():
        return None
    try:
        recorded = record.read_text()[:64] if record.stat().st_size <= 128 else ""
        data = path.read_bytes() if path.stat().st_size == size else b""
    except (OSError, UnicodeDecodeError):
        recorded, data = "", b""
    if not data:
        notice(f"{path} is not the size of the corrupted set it should hold: making it again")
        return None
    if hashlib.sha256(data).hexdigest() != recorded:
        notice(f"{path} was changed on disk (its SHA-256 is not the one recorded beside it): making it again")
        return None
    return data
