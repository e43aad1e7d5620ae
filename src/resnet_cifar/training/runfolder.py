"""The run folder: one writer at a time (a lock), refusal to mix two runs, and --overwrite that loses nothing."""
from __future__ import annotations

import os
import platform
import shutil
import sys
from datetime import datetime
from pathlib import Path
from types import TracebackType

import torch

from ..errors import ResnetCifarError
from ..files import remove_temporaries
from ..log import notice

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs into one folder are not detected there
    fcntl = None  # type: ignore[assignment]

RUN_FILES = ("config.json", "metrics.csv", "last.pt", "best.pt", "model.safetensors", "model.json", "curves.png",
             "eval.json", "confusion.png", "predictions.png", "mistakes.png")
LOCK_FILE = ".lock"
SET_ASIDE = ".replaced"


def default_run_folder(model: str, dataset: str) -> Path:
    """``runs/MODEL-DATASET-YYYYmmdd-HHMMSS``."""
    return Path(f"runs/{model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}")


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run that can be continued: one that saved a checkpoint."""
    return (folder / "last.pt").exists()


def _run_files(folder: Path) -> list[Path]:
    """The files of a run in ``folder`` (never anything else a user keeps there)."""
    return [folder / name for name in RUN_FILES if (folder / name).exists()] + sorted(
        folder.glob("events.out.tfevents.*"))


class SetAside:
    """The files of the run a new run replaces, kept in ``FOLDER/.replaced`` until the new run has a checkpoint.

    ``settle()`` decides: with a new ``last.pt`` they are deleted, without one (the new run failed or was killed
    before saving anything) they come back in place of the new run's files. A run folder is settled this way
    whenever a process takes its lock, so a killed process loses nothing either.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / SET_ASIDE

    @classmethod
    def move(cls, folder: Path) -> SetAside | None:
        """Move the run files of ``folder`` aside (none there: ``None``)."""
        files = _run_files(folder)
        if not files:
            return None
        aside = cls(folder)
        shutil.rmtree(aside.path, ignore_errors=True)
        aside.path.mkdir()
        for file in files:
            file.rename(aside.path / file.name)
        return aside

    def settle(self) -> None:
        if not self.path.exists():
            return
        if holds_run(self.folder):
            shutil.rmtree(self.path)
            return
        for file in _run_files(self.folder):
            file.unlink()
        for file in self.path.iterdir():
            file.rename(self.folder / file.name)
        self.path.rmdir()
        notice(f"{self.folder}: the new run saved no checkpoint, so the run it was to replace is back in place")


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
        SetAside(self.folder).settle()  # a process killed while replacing a run
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def prepare_new_run(folder: Path, overwrite: bool) -> SetAside | None:
    """Refuse a folder holding a run, or with ``overwrite`` set that run's files aside (only those); the files of
    a run that never saved a checkpoint are set aside too, so that the same command can simply be run again."""
    if holds_run(folder) and not overwrite:
        raise ResnetCifarError(f"{folder} already holds a run: continue it with --resume {folder}, "
                               f"replace it with --overwrite, or choose another --out")
    return SetAside.move(folder)


def environment(device: torch.device) -> dict[str, str | int]:
    """Versions, device and CPU threads recorded with every run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or device.type
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "device": str(device), "device_name": name, "cpu_threads": torch.get_num_threads()}
