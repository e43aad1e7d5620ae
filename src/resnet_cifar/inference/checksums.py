"""SHA-256 checksums of exported files: recorded at export, compared on load, so that a damaged file is refused
instead of answering confidently wrong."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError
from ..log import notice

# Metadata keys: the checksum of an ONNX graph or an OpenVINO .bin (in the file), of a whole .pt2 (in its JSON).
WEIGHTS_SHA256 = "weights_sha256"
ARCHIVE_SHA256 = "archive_sha256"


def onnx_weights_sha256(graph: Any) -> str:
    """The SHA-256 of an ONNX graph's serialised form: its weights (initializers), nodes and constants."""
    return hashlib.sha256(graph.SerializeToString()).hexdigest()


def check_recorded(path: Path, what: str, recorded: Any, found: str) -> None:
    """Refuse ``path`` when the checksum ``found`` of ``what`` differs from the ``recorded`` one; a file exported
    before checksums were recorded is loaded with a notice."""
    if recorded is None:
        notice(f"{path} records no checksum of its weights (exported by an older version): export it again to have "
               f"it checked")
        return
    if recorded != found:
        raise ResnetCifarError(f"{path} is damaged: the SHA-256 of {what} is {found[:16]}..., not the "
                               f"{str(recorded)[:16]}... recorded at export; export the model again")
