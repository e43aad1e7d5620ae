"""``resnet-cifar serve``: the app run by uvicorn, in one process or several (``--workers``)."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import resource
import sys
import tempfile
from typing import Any

import uvicorn

from ..errors import ResnetCifarError
from ..log import notice
from .app import ServeSettings, create_app
from .protocol import ConnectionLimits, LimitedHttpToolsProtocol

SETTINGS_VARIABLE = "RESNET_CIFAR_SERVE_SETTINGS"  # how worker processes receive the settings
API_KEY_VARIABLE = "RESNET_CIFAR_API_KEY"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve until interrupted; a model that cannot be loaded ends the server with its one-line error."""
    settings.check()
    if not 1 <= port <= 65535:
        raise ResnetCifarError(f"--port must lie in 1..65535, got {port}")
    if workers < 1:
        raise ResnetCifarError(f"--workers must be a positive integer, got {workers}")
    if not is_loopback(host) and settings.api_key is None:
        print(f"resnet-cifar: warning: serving on {host} without an API key: anyone who can reach this machine can "
              f"use the model; set --api-key or {API_KEY_VARIABLE}, or bind to 127.0.0.1", file=sys.stderr)
    print(f"resnet-cifar: serving on http://{'[' + host + ']' if ':' in host else host}:{port} (page at /, API at "
          f"/predict); loading the model", file=sys.stderr, flush=True)
    _apply_connection_limits(settings)
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False,
                               "server_header": False, "http": LimitedHttpToolsProtocol,
                               "timeout_keep_alive": settings.keep_alive_s}
    if workers > 1:
        _serve_workers(settings, workers, options)
        return
    failure: list[str] = []
    server: Any = None

    def stop_on_failure(message: str) -> None:
        failure.append(message)
        server.should_exit = True

    server = uvicorn.Server(uvicorn.Config(create_app(settings, stop_on_failure), **options))
    server.run()
    if failure:
        raise ResnetCifarError(failure[-1])


def _serve_workers(settings: ServeSettings, workers: int, options: dict[str, Any]) -> None:
    """Several uvicorn worker processes, each with its own model, loaded before it takes a request; metrics summed
    over them (multiprocess mode)."""
    from .model import load_served_model

    load_served_model(settings.model_source(), settings.backend, settings.device)  # fail here, once
    with tempfile.TemporaryDirectory(prefix="resnet-cifar-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ[SETTINGS_VARIABLE] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run("resnet_cifar.serve.server:app_from_environment", factory=True, workers=workers, **options)


def app_from_environment() -> Any:
    """The app of a worker process, from the settings its parent put in the environment."""
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_VARIABLE]))
    _apply_connection_limits(settings, quiet=True)
    return create_app(settings, load_first=True)


# Open files a server needs besides its connections: the model, libraries, the metrics and log files.
RESERVED_FILES = 64


def _apply_connection_limits(settings: ServeSettings, quiet: bool = False) -> None:
    """Give the protocol its limits, with the connection cap kept under the open-file limit (raised to the hard
    limit first): beyond it, accepting a connection would fail for every client, /health included."""
    wanted = settings.max_connections + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    connections = settings.max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        connections = max(1, soft - RESERVED_FILES)
        if not quiet:
            notice(f"this process may open {soft} files, so --max-connections {settings.max_connections} is lowered "
                   f"to {connections}")
    LimitedHttpToolsProtocol.limits = ConnectionLimits(settings.max_header_bytes, settings.max_headers,
                                                       settings.header_timeout_s, connections)
