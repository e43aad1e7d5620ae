"""The run folder: one writer at a time (a lock), refusal to mix two runs, and a clean start on --overwrite."""
from __future__ import annotations

import os
import platform
import sys
from datetime import datetime
from pathlib import Path
from types import TracebackType

import torch

from ..errors import ResnetCifarError
from .io import remove_temporaries

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs into one folder are not detected there
    fcntl = None  # type: ignore[assignment]

RUN_FILES = ("config.json", "metrics.csv", "last.pt", "best.pt", "model.safetensors", "model.json", "curves.png",
             "eval.json", "confusion.png", "predictions.png", "mistakes.png")
LOCK_FILE = ".lock"


def default_run_folder(model: str, dataset: str) -> Path:
    """``runs/MODEL-DATASET-YYYYmmdd-HHMMSS``."""
    return Path(f"runs/{model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}")


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` already holds a training run."""
    return (folder / "config.json").exists() or (folder / "last.pt").exists()


class RunLock:
    """Exclusive lock on a run folder for as long as a process trains into it; the OS drops it if the process dies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise ResnetCifarError(f"another process is training into {self.folder}; wait for it, or choose "
                                       f"another --out") from None
        remove_temporaries(self.folder)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def prepare_new_run(folder: Path, overwrite: bool) -> None:
    """Refuse a folder holding a run, or with ``overwrite`` delete that run's files (only those) first."""
    if not holds_run(folder):
        return
    if not overwrite:
        raise ResnetCifarError(f"{folder} already holds a run: continue it with --resume {folder}, "
                               f"replace it with --overwrite, or choose another --out")
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink()


def environment(device: torch.device) -> dict[str, str | int]:
    """Versions, device and CPU threads recorded with every run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or device.type
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "device": str(device), "device_name": name, "cpu_threads": torch.get_num_threads()}
