"""benchmarks/explain_faithfulness.py: the deletion order a map gives, and the curves it draws."""
from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/explain_faithfulness.py")


def test_pixels_and_patches_are_deleted_in_the_maps_order(script) -> None:
    scores = torch.zeros(1, 4, 4)
    scores[0, 3, 0], scores[0, 0, 1] = 5.0, 3.0
    ranks = script.deletion_ranks(scores, 1)
    assert ranks[0, 3, 0] == 0 and ranks[0, 0, 1] == 1 and sorted(ranks.flatten().tolist()) == list(range(16))
    patches = script.deletion_ranks(scores, 2)
    assert (patches[0, 2:, :2] == 0).all() and (patches[0, :2, :2] == 1).all()  # 5/4 then 3/4 on average
    assert sorted(patches.flatten().tolist()) == sorted([0, 1, 2, 3] * 4)


class OnePixel(nn.Module):
    """Sure of class 0 while the top-left pixel is bright; unsure (50/50) once it is deleted."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([10 * images[:, 0, 0, 0], torch.zeros(len(images))], 1)


def test_deleting_the_pixel_the_model_uses_first_drops_the_probability_at_once(script) -> None:
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 0, 0] = 1.0
    first = torch.arange(16).view(1, 4, 4)  # the top-left pixel first
    last = first.flip(1, 2)
    target, fill = torch.tensor([0]), torch.zeros(1, 1, 4, 4)
    falling = script.deletion_curves(OnePixel(), image, target, first, fill, steps=4)
    lasting = script.deletion_curves(OnePixel(), image, target, last, fill, steps=4)
    sure = torch.sigmoid(torch.tensor(10.0)).item()
    assert falling[0].tolist() == pytest.approx([sure, 0.5, 0.5, 0.5, 0.5])
    assert lasting[0].tolist() == pytest.approx([sure, sure, sure, sure, 0.5])
    assert script.area(falling) < script.area(lasting)
    assert script.area(torch.ones(1, 5)).item() == pytest.approx(1.0)
