"""Load on ``resnet-cifar serve`` from 127.0.0.1, dynamic batching on and off, against the backend's raw rate.

For each model: the served backend's raw batched inference rate in this process (images/s, batches of 64,
decoded images already in memory: the limit a server can approach), then for batching on (--max-batch 64) and
off (--max-batch 1) a real server in a subprocess and wrk (Debian's package: C, HTTP/1.1 keep-alive as clients
send it, far lighter than a Python client on a 2-core machine) posting one 32x32 PNG from --concurrency
connections, for as long as --requests take at the rate a 5 s warm-up measured: requests/s, p50/p99 latency,
errors, and the server's resident memory before and after. ResNet-18 has random weights (the speed does not
depend on them). With --int8 each model is served from its OpenVINO int8 export (`resnet-cifar export --format
openvino --int8`, calibrated on the bundled sample), as a user deploying for speed would serve it.

    .venv/bin/python benchmarks/serve_load.py [--models resnet20 resnet18] [--requests 20000]
        [--concurrency 64 16] [--int8] [--json FILE]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from resnet_cifar.core.checkpoint import export_model
from resnet_cifar.core.saved_model import model_info
from resnet_cifar.core.source import resolve_source
from resnet_cifar.data.class_names import CIFAR10_CLASSES
from resnet_cifar.models import create_model
from resnet_cifar.serve.model import load_served_model

EXAMPLE = Path(__file__).resolve().parents[1] / "src/resnet_cifar/data/assets/examples/cat.png"


def model_source(name: str, scratch: Path) -> list[str]:
    """serve's arguments for ``name``: the shipped resnet20, or a model folder of random weights."""
    if name == "resnet20":
        return ["--pretrained", "resnet20"]
    folder = scratch / name
    model = create_model(name)
    export_model(folder, model.state_dict(), model_info(name, {}, CIFAR10_CLASSES, (3, 32, 32), [0.49, 0.48, 0.45],
                                                        [0.25, 0.24, 0.26]))
    return [str(folder)]


def int8_export(source: list[str], name: str, scratch: Path) -> list[str]:
    """serve's arguments for the OpenVINO int8 export of ``source`` (written by ``resnet-cifar export``)."""
    out = scratch / f"{name}-int8.xml"
    subprocess.run([sys.executable, "-m", "resnet_cifar", "export", *source, "--format", "openvino", "--int8",
                    "--dataset", "cifar10-sample", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return [str(out)]


def raw_rate(source: list[str], backend: str, batch: int, seconds: float = 10.0) -> tuple[float, str]:
    """Images/s of the served model's ``classify`` on batches of ``batch`` decoded images, and its backend."""
    pretrained = source[1] if source[0] == "--pretrained" else None
    served = load_served_model(resolve_source(None if pretrained else source[0], pretrained), backend)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
    served.classify(images)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        served.classify(images)
        done += batch
    return done / (time.perf_counter() - start), served.backend


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(source: list[str], backend: str, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "resnet_cifar", "serve", *source, "--backend", backend,
                                "--max-batch", str(max_batch), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server ended: {process.stderr.read()}")
        time.sleep(0.1)
    raise SystemExit("the server was not ready within 300 s")


WRK_SCRIPT = """
local f = io.open(os.getenv("RESNET_CIFAR_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
"""


def wrk(url: str, seconds: float, concurrency: int, script: Path) -> dict[str, float]:
    """Run wrk for ``seconds``: requests/s, latency percentiles (ms), answers and errors."""
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
                          "-s", str(script), url + "/predict"], capture_output=True, text=True, check=True,
                         env={**os.environ, "RESNET_CIFAR_BODY": str(EXAMPLE)}).stdout

    def milliseconds(percent: int) -> float:
        value, unit = re.search(rf"\n\s+{percent}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else 0.0

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests_per_s": number(r"Requests/sec:\s+([\d.]+)"), "p50_ms": milliseconds(50),
            "p99_ms": milliseconds(99), "completed": number(r"(\d+) requests in"),
            "non_2xx": number(r"Non-2xx or 3xx responses: (\d+)"),
            "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64], help="open connections; several: "
                        "one set of rows each (default 64)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--int8", action="store_true", help="serve each model's OpenVINO int8 export")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(WRK_SCRIPT)
        for name in args.models:
            source = model_source(name, Path(scratch))
            if args.int8:
                source = int8_export(source, name, Path(scratch))
            raw, backend = raw_rate(source, args.backend, 64)
            for concurrency, (batching, max_batch) in itertools.product(args.concurrency, (("on", 64), ("off", 1))):
                process, url = start_server(source, args.backend, max_batch)
                try:
                    warm = wrk(url, 5, concurrency, script)  # warm-up, not counted: sets the length
                    before = rss_mb(process.pid)
                    load = wrk(url, args.requests / warm["requests_per_s"], concurrency, script)
                    after = rss_mb(process.pid)
                finally:
                    process.terminate()
                    process.wait(timeout=60)
                row = {"model": name, "int8": args.int8, "backend": backend, "batching": batching,
                       "max_batch": max_batch, "clients": concurrency, "raw_images_per_s": raw, **load,
                       "share_of_raw": load["requests_per_s"] / raw, "rss_before_mb": before, "rss_after_mb": after}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{os.cpu_count()} CPUs, torch {torch.__version__}, about {args.requests} requests a row")
    print(f"{'model':<14} {'clients':>7} {'batching':<8} {'req/s':>8} {'raw img/s':>9} {'share':>6} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6} {'RSS MB before/after':>20}")
    for row in rows:
        model = row["model"] + (" int8" if row["int8"] else "")
        print(f"{model:<14} {row['clients']:>7} {row['batching']:<8} {row['requests_per_s']:>8.1f} "
              f"{row['raw_images_per_s']:>9.1f} {row['share_of_raw']:>6.0%} {row['p50_ms']:>7.0f} "
              f"{row['p99_ms']:>7.0f} "
              f"{row['socket_errors'] + row['non_2xx']:>6.0f} {row['rss_before_mb']:>9.0f} / {row['rss_after_mb']:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
