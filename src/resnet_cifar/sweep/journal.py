"""A study journal file checked before Optuna replays it: a record cut off at the end (a kill or a full disk during
a write) is dropped, as a database replays its log up to the last whole record; any other damage is one line that
names the file, the line and the way out, instead of a traceback from inside Optuna."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError
from ..log import notice

# Optuna's JournalOperation codes (optuna.storages.journal._storage, 0-10 since optuna 3.1).
OP_CODES = range(11)
# One record is one operation: a trial's parameters and attributes, a few kilobytes. Longer lines are damage, and
# never read whole.
MAX_RECORD_BYTES = 1 << 20


def check_journal(path: Path) -> None:
    """Check every record of the journal at ``path`` (missing: nothing to check), holding Optuna's own lock on it
    so that no process appends meanwhile; drop a torn last record, saying so; refuse any other damage."""
    if not path.is_file():
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))  # the lock JournalFileBackend takes for every append
    lock.acquire()
    try:
        torn_at = _first_torn_record(path)
        if torn_at is not None:
            cut = path.stat().st_size - torn_at
            os.truncate(path, torn_at)
            notice(f"{path} ended in a record cut off mid-write ({cut} bytes, as a kill or a full disk leaves it): "
                   f"dropped it and continued from the last whole record")
    finally:
        lock.release()


def _first_torn_record(path: Path) -> int | None:
    """The byte offset of a last record without its line end, or None; a damaged whole record is refused."""
    offset = 0
    with path.open("rb") as journal:
        for number, line in enumerate(iter(lambda: journal.readline(MAX_RECORD_BYTES + 1), b""), 1):
            if not line.endswith(b"\n"):
                if len(line) > MAX_RECORD_BYTES:
                    _refuse(path, number, f"is longer than the {MAX_RECORD_BYTES:,} bytes a record may be")
                return offset
            problem = _record_problem(line)
            if problem:
                _refuse(path, number, problem)
            offset += len(line)
    return None


def _record_problem(line: bytes) -> str | None:
    try:
        record: Any = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "is not a JSON record"
    if not isinstance(record, dict) or "op_code" not in record:
        return "is not an Optuna journal operation (no op_code)"
    code = record["op_code"]
    if isinstance(code, bool) or not isinstance(code, int) or code not in OP_CODES:
        return f"holds op_code {code!r}, which Optuna does not know"
    return None


def _refuse(path: Path, number: int, problem: str) -> None:
    raise ResnetCifarError(f"{path} line {number} {problem}: the journal is damaged; keep the {number - 1} records "
                           f"before it with 'head -n {number - 1} {path} > kept && mv kept {path}' (trials recorded "
                           f"after it are lost), or sweep into another --out")
