"""Fault injection for the reliability tests: inert unless one of these environment variables is set.

- ``RESNET_CIFAR_FAULT_KILL_AT_BATCH=N``: SIGKILL the process right after global training batch N.
- ``RESNET_CIFAR_FAULT_KILL_IN_WRITE=NAME:N``: SIGKILL half-way through the N-th atomic write of file NAME.
- ``RESNET_CIFAR_FAULT_NAN_AT_BATCH=N``: make the images of global batch N NaN, so its loss is not finite.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import BinaryIO

_writes: dict[str, int] = {}


def _setting(name: str) -> str | None:
    return os.environ.get(f"RESNET_CIFAR_FAULT_{name}")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after_batch(global_batch: int) -> None:
    """Kill the process after the configured batch."""
    if _setting("KILL_AT_BATCH") == str(global_batch):
        _die()


def poison(images, global_batch: int):
    """The batch's images, or NaNs in their place for the configured batch."""
    if _setting("NAN_AT_BATCH") == str(global_batch):
        return images * float("nan")
    return images


def during_write(path: Path, file: BinaryIO) -> None:
    """Cut the temporary file to half its length and kill the process, on the configured write."""
    setting = _setting("KILL_IN_WRITE")
    if not setting:
        return
    name, count = setting.rsplit(":", 1)
    if path.name != name:
        return
    _writes[name] = _writes.get(name, 0) + 1
    if _writes[name] == int(count):
        file.flush()
        file.truncate(file.tell() // 2)
        file.flush()
        _die()
