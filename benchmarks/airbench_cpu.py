"""airbench moved to the CPU: its PyPI source (0.1.8) with the few changes that only move it there, listed below.

The changes are applied to airbench's own source text as it is loaded (``load_airbench_for_cpu``): each must match
its line exactly, so another airbench version fails with a message naming the change rather than running
something else. Nothing about the network, the data order, the augmentation, the optimiser or the schedule changes.
Precision is not a source change either: ``airbench_peer.py`` wraps training and evaluation in bf16 autocast on CPUs
with native bf16, as our own CPU training runs (``--cpu-amp off``: float32), with autocast's weight cache off
(airbench's fp16 on the GPU has no counterpart on CPUs, where fp16 is slow).
"""
from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import torch

PACKAGE = "airbench_on_cpu"
LIBRARIES = ("utils", "lib_airbench93", "lib_airbench94", "lib_airbench95", "lib_airbench96")

# (file, airbench's text, the CPU's text, why): the complete list of changes.
CPU_CHANGES = [
    ("utils", "import torchvision\nimport torchvision.transforms as T\n", "",
     "torchvision is used only for Normalize (given below, the same arithmetic) and for downloading the official "
     "files, which never runs: our copy is written in airbench's format first"),
    ("utils", "data = torch.load(data_path, map_location=torch.device(gpu))",
     "data = torch.load(data_path, map_location='cpu', weights_only=True)",
     "the data stays on the CPU (airbench loads it onto GPU 0); tensors only"),
    ("utils", "self.images = (self.images.half() / 255)", "self.images = (self.images.float() / 255)",
     "float32 images: CPU autocast picks the precision of each operation (fp16 is slow on CPUs)"),
    ("utils", "starter = torch.cuda.Event(enable_timing=True)", "starter = CpuEvent()",
     "airbench's clock: CUDA events become wall-clock stamps with the same record()/elapsed_time() calls"),
    ("utils", "ender = torch.cuda.Event(enable_timing=True)", "ender = CpuEvent()", "as above"),
    ("utils", "torch.cuda.synchronize()", "None", "nothing to wait for on the CPU (3 places)"),
    ("utils", "def init_whitening_conv(", "@torch.autocast('cpu', enabled=False)\ndef init_whitening_conv(",
     "the whitening layer's patch covariance and eigenvectors stay float32 under the caller's bf16 autocast, as on "
     "the GPU (in bf16 the covariance loses its small eigenvalues and training turns to NaN at once)"),
    *[(library, "net = net.half().cuda()", "net = net.float()",
       "float32 weights on the CPU, as our CPU training keeps them under autocast (airbench: fp16 on the GPU)")
      for library in LIBRARIES[1:]],
]


class CpuEvent:
    """``torch.cuda.Event(enable_timing=True)``'s two calls that airbench uses, on the wall clock."""

    def record(self) -> None:
        self.stamp = time.perf_counter()

    def elapsed_time(self, end: CpuEvent) -> float:
        """Milliseconds from this event to ``end``, as CUDA events report them."""
        return 1000 * (end.stamp - self.stamp)


class Normalize:
    """torchvision's ``transforms.Normalize`` on a batch of NCHW images: (x - mean) / std per channel."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)


def patched_source(library: str, source: str) -> str:
    """``source`` of airbench's ``library`` with its CPU changes; a change that no longer matches is an error."""
    for file, old, new, _ in CPU_CHANGES:
        if file != library:
            continue
        if old not in source:
            raise SystemExit(f"airbench's {library}.py has no {old!r}: this port is for airbench 0.1.8 "
                             "(pip install airbench==0.1.8)")
        source = source.replace(old, new)
    return source


def airbench_folder() -> Path:
    """Where the installed airbench's source lies (found without importing it: that needs torchvision)."""
    spec = importlib.util.find_spec("airbench")
    if spec is None or spec.origin is None:
        raise SystemExit("airbench is not installed: pip install airbench==0.1.8")
    return Path(spec.origin).parent


def load_airbench_for_cpu() -> types.ModuleType:
    """airbench's ``train9x``, ``warmup9x``, ``evaluate`` and ``CifarLoader``, built from its installed source with
    ``CPU_CHANGES`` (as package ``airbench_on_cpu``; the installed ``airbench`` itself is left as it is)."""
    folder = airbench_folder()
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    for library in LIBRARIES:
        module = types.ModuleType(f"{PACKAGE}.{library}")
        module.__package__ = PACKAGE
        if library == "utils":
            module.CpuEvent = CpuEvent
            module.T = types.SimpleNamespace(Normalize=Normalize)
        sys.modules[module.__name__] = module
        source = patched_source(library, (folder / f"{library}.py").read_text())
        exec(compile(source, str(folder / f"{library}.py"), "exec"), module.__dict__)
        setattr(package, library, module)
    package.__package__ = PACKAGE
    exec(compile((folder / "__init__.py").read_text(), str(folder / "__init__.py"), "exec"), package.__dict__)
    return package
