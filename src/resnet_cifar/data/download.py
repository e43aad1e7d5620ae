"""Fetch a dataset archive over http(s), check its MD5 and unpack it safely."""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ResnetCifarError
from ..log import notice

TIMEOUT_S = 30


def download_archive(url: str, md5: str, root: Path) -> None:
    """Download ``url`` into ``root``, refuse it unless its MD5 is ``md5``, and extract it there."""
    root.mkdir(parents=True, exist_ok=True)
    notice(f"downloading {url} into {root}")
    digest = hashlib.md5()
    with tempfile.NamedTemporaryFile(dir=root, suffix=".part", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    part.write(chunk)
                    digest.update(chunk)
        except (urllib.error.URLError, OSError) as error:
            os.unlink(part.name)
            raise ResnetCifarError(f"cannot download {url} ({getattr(error, 'reason', error)}); fetch it by hand "
                                   f"and unpack it under {root}, or pick --dataset cifar10-sample") from None
    try:
        if digest.hexdigest() != md5:
            raise ResnetCifarError(f"{url} arrived with MD5 {digest.hexdigest()}, not the official {md5}: "
                                   f"the download is damaged or not the official archive; try again")
        _extract(Path(part.name), root)
    finally:
        os.unlink(part.name)


def _extract(archive: Path, root: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # Python without extraction filters: refuse members that would land outside root
                for member in tar.getmembers():
                    target = (root / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or root.resolve() not in target.parents:
                        raise ResnetCifarError(f"{archive.name} holds an unsafe member {member.name!r}")
                tar.extractall(root)
    except tarfile.TarError as error:
        raise ResnetCifarError(f"cannot unpack the downloaded archive ({error}); try again") from None
