"""Data-parallel training over processes started by ``torchrun``: who we are, collectives, synchronised BatchNorm.

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is a no-op for a world of one.
"""
from __future__ import annotations

import contextlib
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ResnetCifarError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints, logs and writes files."""
        return self.rank == 0


def world_from_environment() -> World:
    """The ranks ``torchrun`` set in the environment (a world of one without it)."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ResnetCifarError("RANK, WORLD_SIZE and LOCAL_RANK must be integers: start several processes "
                               "with torchrun") from None


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the process group of ``world`` (NCCL for CUDA, gloo otherwise) for the duration of the block."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # device_id binds the group to this rank's GPU at once (no guessing of the device at the first barrier).
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    # Every rank past its last collective before any tears the group down: a gloo rank whose peer left while its
    # worker threads still held work has been seen to abort at exit ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def device_of_rank(device: torch.device, world: World) -> torch.device:
    """One GPU per process on a machine: CUDA device ``LOCAL_RANK``; other devices are shared as they are."""
    if world.distributed and device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ResnetCifarError(f"local rank {world.local_rank} but only {torch.cuda.device_count()} GPUs: "
                                   f"start at most that many processes per machine (--nproc_per_node)")
        return torch.device("cuda", world.local_rank)
    return device


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# The tensors of the last collectives, kept from Python. A gloo worker thread can hold the last reference to a
# finished collective's tensor; freeing it there takes the GIL, which the main thread holds while it destroys the
# process group (when the last DistributedDataParallel model goes) and joins that thread: a deadlock at exit, seen
# with torch 2.3.1 under load. Kept here, those tensors are never freed by the worker. Works finish in order and
# every collective here is waited for, so a few suffice.
_KEPT: deque[torch.Tensor] = deque(maxlen=16)


def _reduced_copy(values: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    """``values`` reduced element-wise with ``op`` over every process (a copy; ``values`` itself when alone)."""
    if not _active():
        return values
    reduced = values.clone()
    _KEPT.append(reduced)
    dist.all_reduce(reduced, op=op)
    return reduced


def sum_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over every process."""
    return _reduced_copy(values, dist.ReduceOp.SUM)


def max_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise maximum of ``values`` over every process."""
    return _reduced_copy(values, dist.ReduceOp.MAX)


class DeferredMax:
    """The maximum of a small integer over every process, exchanged without making any process wait for it.

    ``exchange(value)`` starts an all-reduce of ``value`` and returns the result of the previous exchange (0 the
    first time): every process calls it at the same steps, so all act on the same result at the same step, one
    exchange later. On a GPU the result travels to pinned host memory behind the queued work and is read only
    when its event has passed, so the host never drains the GPU's queue (a plain ``.item()`` would, twice:
    for the value's upload and for the read).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._read_pending: Callable[[], int] | None = None

    def exchange(self, value: int) -> int:
        previous = self.finish()
        if not _active():
            return max(previous, value)
        local = torch.full((1,), value, dtype=torch.int64, device=self.device)  # a fill: no upload to wait for
        _KEPT.append(local)
        work = dist.all_reduce(local, op=dist.ReduceOp.MAX, async_op=True)
        if self.device.type == "cuda":
            work.wait()  # makes the current stream wait for the all-reduce; the host does not wait
            host = torch.empty(1, dtype=torch.int64, pin_memory=True)
            host.copy_(local, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record()

            def read() -> int:
                copied.synchronize()
                return int(host[0])
        else:
            def read() -> int:
                work.wait()
                return int(local[0])
        self._read_pending = read
        return previous

    def finish(self) -> int:
        """The result of the exchange in flight (waiting for it), or 0; afterwards none is in flight."""
        read, self._read_pending = self._read_pending, None
        return read() if read is not None else 0


def barrier() -> None:
    if _active():
        dist.barrier()


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) with a gradient: the gradient of a sum over ranks is the sum of the ranks' gradients.

    Written here because ``torch.distributed.nn.functional.all_reduce`` is deprecated and its replacement is
    private API.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, values: torch.Tensor) -> torch.Tensor:
        total = values.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of every process, for any backend.

    ``torch.nn.SyncBatchNorm`` accepts only GPU inputs, so CPU (gloo) runs use this: per-channel sums and
    squared sums go through one differentiable all-reduce, which also sums their gradients in the backward
    pass. Alone, or in eval mode, it is a plain ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        channels = x.shape[1]
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in full precision
        local = torch.cat([xf.sum((0, 2, 3)), xf.square().sum((0, 2, 3)),
                           xf.new_full((1,), xf.numel() / channels)])
        total = _SumAcrossRanks.apply(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean.square()).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), momentum)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -mean * scale + (self.bias if self.affine else 0)
        return xf * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm2d synchronised over the processes (torch's SyncBatchNorm on CUDA)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d and child.track_running_stats:
            synced = AllReduceBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats, device=device, dtype=child.running_mean.dtype)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return model
