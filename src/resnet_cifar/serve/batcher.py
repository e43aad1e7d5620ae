"""Dynamic batching: the images of concurrent requests gathered into one forward pass.

Hand-written (about 60 lines of asyncio) rather than taken from a serving framework: the gathering rule is the
whole of it, and owning it keeps the server a plain FastAPI app that any ASGI server runs.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class QueueFull(Exception):
    """More images are waiting than the queue may hold: the client should retry later (HTTP 429)."""


class DynamicBatcher:
    """Runs ``process`` (a list of items -> one result per item, an ``Exception`` for an item that failed) on
    batches of at most ``max_batch`` items: a batch starts with the first waiting item and closes when full or
    ``max_wait_s`` after it arrived. ``process`` runs in one worker thread, so the event loop keeps accepting
    requests meanwhile."""

    def __init__(self, process: Callable[[list[Any]], list[Any]], *, max_batch: int, max_wait_s: float,
                 max_queue: int, on_batch: Callable[[int], None] = lambda size: None) -> None:
        self.process, self.max_batch, self.max_wait_s = process, max_batch, max_wait_s
        self.on_batch = on_batch
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resnet-cifar-model")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, items: list[Any]) -> list[asyncio.Future]:
        """Queue ``items``, all or none; each future resolves to its item's result (or raises its exception)."""
        if self.queue.maxsize - self.queue.qsize() < len(items):
            raise QueueFull(f"{self.queue.qsize()} images are waiting (--max-queue {self.queue.maxsize})")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            self.queue.put_nowait((item, future))
        return futures

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self.queue.empty():  # what is already waiting joins at once
                    batch.append(self.queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                # asyncio.wait, not wait_for: a timed-out wait_for could drop an image it had just taken (Python
                # < 3.12); a get cancelled before it took one leaves the queue as it was.
                getter = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({getter}, timeout=remaining)
                if not getter.done():
                    getter.cancel()
                    break
                batch.append(getter.result())
            live = [(item, future) for item, future in batch if not future.done()]  # a client gone: skip it
            if not live:
                continue
            self.on_batch(len(live))
            try:
                results = await loop.run_in_executor(self._executor, self.process, [item for item, _ in live])
            except Exception as error:  # noqa: BLE001  handed to every waiting request, which answers 500
                results = [error] * len(live)
            for (_, future), result in zip(live, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
