"""Large images decoded off the model's thread, by a pool of their own with a bounded backlog.

An image's decoding cost follows its pixels, not its file size: a 72 KB PNG of 4999 x 4999 pixels takes 0.7 s to
decode on one core. Small images are decoded by the batcher with their batch (0.16 ms for 32 x 32); larger ones
here, so that a flood of them neither holds up the model's thread nor takes every core.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from ..core.threads import usable_cpus

# Images up to this many pixels are decoded in the batch (a 512 x 512 PNG in about 5 ms).
DECODE_IN_BATCH_PIXELS = 512 * 512
# Images waiting for or in the pool, per decoding thread, before more are refused (429).
BACKLOG_PER_THREAD = 4


class DecoderBusy(Exception):
    """More large images wait to be decoded than the backlog allows."""


class LargeImageDecoder:
    """A thread pool for large images: half the usable CPUs (at least one), at most ``BACKLOG_PER_THREAD`` images
    per thread queued or running."""

    def __init__(self) -> None:
        self.threads = max(1, usable_cpus() // 2)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="resnet-cifar-decode")
        self.pending = 0

    async def decode(self, work: Callable[[], torch.Tensor | Exception], timeout_s: float) -> torch.Tensor | Exception:
        """``work()`` run in the pool; ``DecoderBusy`` when the backlog is full, ``asyncio.TimeoutError`` after
        ``timeout_s`` seconds (the work then still finishes in its thread and leaves the backlog)."""
        if self.pending >= self.threads * BACKLOG_PER_THREAD:
            raise DecoderBusy(f"{self.pending} large images are being decoded")
        self.pending += 1
        future = asyncio.get_running_loop().run_in_executor(self.pool, work)
        future.add_done_callback(self._done)
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)

    def _done(self, _: asyncio.Future) -> None:
        self.pending -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
