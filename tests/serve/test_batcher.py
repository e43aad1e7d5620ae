"""Dynamic batching: concurrent images gathered into one forward pass, each answered with its own result."""
from __future__ import annotations

import asyncio

import pytest
import torch

from resnet_cifar.serve.batcher import DynamicBatcher, QueueFull


def _image(value: int) -> torch.Tensor:
    return torch.full((3, 2, 2), value, dtype=torch.uint8)


class Recorder:
    """A fake model: answers each image with its own pixel value (an image of 13: a ValueError of its own), records
    the batch sizes it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.fail = fail

    def __call__(self, images: list[torch.Tensor]) -> list:
        self.sizes.append(len(images))
        if self.fail:
            raise RuntimeError("the model broke")
        return [ValueError("unlucky") if int(image[0, 0, 0]) == 13 else image[0, 0, :1].float() for image in images]


async def _answers(batcher: DynamicBatcher, groups: list[list[int]], gap_s: float = 0.0) -> list[list[float]]:
    batcher.start()
    try:
        futures = []
        for group in groups:
            futures.append(batcher.submit([_image(value) for value in group]))
            await asyncio.sleep(gap_s)
        return [[float(row[0]) for row in await asyncio.gather(*group)] for group in futures]
    finally:
        await batcher.stop()


def test_concurrent_images_share_a_forward_pass_and_keep_their_answers() -> None:
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch=4, max_wait_s=0.05, max_queue=100)
    answers = asyncio.run(_answers(batcher, [[1], [2, 3], [4], [5], [6, 7]]))
    assert answers == [[1.0], [2.0, 3.0], [4.0], [5.0], [6.0, 7.0]]
    assert model.sizes == [4, 3]  # all waiting at once: full batches of at most 4


def test_a_batch_closes_after_max_wait_and_batching_off_is_one_image_a_pass() -> None:
    model = Recorder()
    waited = DynamicBatcher(model, max_batch=64, max_wait_s=0.01, max_queue=100)
    asyncio.run(_answers(waited, [[1], [2]], gap_s=0.1))  # the second comes long after the first batch closed
    assert model.sizes == [1, 1]
    single = Recorder()
    asyncio.run(_answers(DynamicBatcher(single, max_batch=1, max_wait_s=0.05, max_queue=100), [[1, 2, 3]]))
    assert single.sizes == [1, 1, 1]


def test_a_full_queue_takes_all_of_a_request_or_none() -> None:
    async def fill() -> None:
        batcher = DynamicBatcher(Recorder(), max_batch=8, max_wait_s=0.01, max_queue=3)
        batcher.submit([_image(1), _image(2)])  # not started: they wait
        with pytest.raises(QueueFull, match=r"2 images are waiting \(--max-queue 3\)"):
            batcher.submit([_image(3), _image(4)])
        assert batcher.queue.qsize() == 2
        await batcher.stop()

    asyncio.run(fill())


def test_an_item_that_fails_fails_alone() -> None:
    async def run() -> None:
        batcher = DynamicBatcher(Recorder(), max_batch=8, max_wait_s=0.01, max_queue=10)
        batcher.start()
        outcomes = await asyncio.gather(*batcher.submit([_image(1), _image(13), _image(3)]), return_exceptions=True)
        assert float(outcomes[0][0]) == 1.0 and isinstance(outcomes[1], ValueError) and float(outcomes[2][0]) == 3.0
        await batcher.stop()

    asyncio.run(run())


def test_a_failing_model_fails_every_request_of_its_batch_and_the_next_batch_runs() -> None:
    async def run() -> None:
        model = Recorder(fail=True)
        batcher = DynamicBatcher(model, max_batch=8, max_wait_s=0.01, max_queue=10)
        batcher.start()
        futures = batcher.submit([_image(1), _image(2)])
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            assert isinstance(outcome, RuntimeError)
        model.fail = False
        assert float((await batcher.submit([_image(9)])[0])[0]) == 9.0
        await batcher.stop()

    asyncio.run(run())


def test_an_abandoned_request_is_left_out_of_the_batch() -> None:
    async def run() -> None:
        model = Recorder()
        batcher = DynamicBatcher(model, max_batch=8, max_wait_s=0.05, max_queue=10)
        gone, kept = batcher.submit([_image(1)]), batcher.submit([_image(2)])
        gone[0].cancel()  # its client disconnected or timed out
        batcher.start()
        assert float((await kept[0])[0]) == 2.0 and model.sizes == [1]
        await batcher.stop()

    asyncio.run(run())
