"""A real PostgreSQL server for the sweep's shared-database tests: Debian's, started in a temporary folder."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _postgres_bin() -> Path | None:
    """The folder of Debian's initdb/pg_ctl (under /usr/lib/postgresql/VERSION/bin), or of one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root the commands run as the postgres user (Debian's package makes
    it), otherwise as ourselves."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError when the package did not create it
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """``postgresql://sweep@127.0.0.1:PORT/postgres`` of a server that lives as long as the test module."""
    pytest.importorskip("psycopg", reason="the sweep extra's PostgreSQL driver is not installed")
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL here: `make test` installs Debian's postgresql where it may (root with apt-get); "
                    "elsewhere apt-get install postgresql")
    try:
        runner = _as_server_user()
    except KeyError:
        pytest.skip("running as root without a postgres user to run the server as")
    # Under /tmp itself: pytest's own temporary folders are private to our user, which the server's cannot enter.
    root = Path(tempfile.mkdtemp(prefix="resnet-cifar-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if runner:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run([*runner, str(binaries / "initdb"), "-D", str(data), "-U", "sweep", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {sockets}"
    subprocess.run([*runner, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)
    yield f"postgresql://sweep@127.0.0.1:{port}/postgres"
    subprocess.run([*runner, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
