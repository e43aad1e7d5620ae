"""CPU threads for PyTorch: never more than the CPUs this process may use.

PyTorch's default thread count (OpenMP's) sees the machine's CPUs and the affinity mask, not a container's CPU
quota: ``docker run --cpus=2`` on a 64-core host gets 64 threads. OpenMP threads beyond the CPUs one may use
spin against each other, and training gets many times slower (ResNet-20, bf16 + channels-last, on 2 CPUs:
1,722 images/s with 2 threads, 173 with 4; BENCHMARKS.md).
"""
from __future__ import annotations

import os

import torch
from joblib import cpu_count

from ..errors import require_positive_int
from ..log import notice

_chosen = False  # whether the user chose the thread count (--threads or OMP_NUM_THREADS)


def usable_cpus() -> int:
    """CPUs this process may use: the machine's, narrowed by its affinity mask, a cgroup CPU quota (containers)
    and ``LOKY_MAX_CPU_COUNT`` if set (joblib's reading of them, the one scikit-learn relies on)."""
    return cpu_count()


def configure_threads(requested: int | None = None) -> int:
    """Set PyTorch's intra-op threads and return how many it now uses.

    ``requested`` (``--threads``) wins, capped at ``usable_cpus()``. Otherwise a set ``OMP_NUM_THREADS`` stays as PyTorch read it (torchrun
    sets it to 1 for each process when it starts several), and without it PyTorch's default is capped at
    ``usable_cpus()``.
    """
    global _chosen
    _chosen = requested is not None or "OMP_NUM_THREADS" in os.environ
    if requested is not None:
        require_positive_int("threads", requested)
        usable = usable_cpus()
        if requested > usable:
            notice(f"--threads {requested} is more than the {usable} CPUs this process may use, and threads beyond "
                   f"them only wait for each other: using {usable}")
            requested = usable
        torch.set_num_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(torch.get_num_threads(), usable_cpus()))
    return torch.get_num_threads()


def follow_saved_threads(saved: int | None) -> None:
    """Use the thread count a run was saved with, unless ``--threads`` or ``OMP_NUM_THREADS`` chose one: a CPU
    run continues bit for bit only with the same count (reductions split by thread). Capped at usable CPUs."""
    if _chosen or not saved or saved == torch.get_num_threads():
        return
    threads = min(saved, usable_cpus())
    torch.set_num_threads(threads)
    if threads == saved:
        notice(f"using the {saved} CPU threads this run was saved with, as resuming exactly needs (--threads "
               f"overrides)")
    else:
        notice(f"this run was saved with {saved} CPU threads but only {threads} CPUs are usable here: it continues, "
               f"but not bit for bit as it would have")
