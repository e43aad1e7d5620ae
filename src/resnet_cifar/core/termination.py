"""SIGTERM raised as an exception where the process stands, as Ctrl-C raises ``KeyboardInterrupt``, so that the
clean-up of a command (``finally`` blocks, a partial index written) runs before it exits."""
from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; the command line exits with 128 + 15."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside (in the main thread; elsewhere signals cannot be handled), SIGTERM raises ``Terminated``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
