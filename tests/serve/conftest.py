"""Fixtures of the serve tests: a real ``resnet-cifar serve`` in a subprocess on 127.0.0.1, talked to over HTTP."""
from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    """A server process, its base URL and the /health statuses seen while waiting for it."""

    process: subprocess.Popen
    url: str
    health_seen: list[int] = field(default_factory=list)

    def stop(self) -> str:
        """Stop the server (SIGTERM, as a service manager would); its stderr."""
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def _start_server(*args: str, wait_ready: bool = True, timeout: float = 120,
                  open_files: int | None = None) -> RunningServer:
    """Start ``resnet-cifar serve ARGS --port P`` and poll /health every 20 ms until it answers 200;
    ``open_files``: the process's open-file limit (soft and hard), as a service manager may set it."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    limit = None if open_files is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                         (open_files, open_files)))
    process = subprocess.Popen([sys.executable, "-m", "resnet_cifar", "serve", *args, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=limit)
    server = RunningServer(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while wait_ready and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server ended with {process.returncode}: {process.stderr.read()}")
        try:
            status = httpx.get(server.url + "/health", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.02)
            continue
        server.health_seen.append(status)
        if status == 200:
            return server
        time.sleep(0.02)
    if wait_ready:
        server.stop()
        raise RuntimeError(f"the server was not ready within {timeout} s")
    return server


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def start_server():
    """``start_server(*serve_args, wait_ready=True)``: a running server (``.url``, ``.health_seen``, ``.stop()``)."""
    return _start_server
