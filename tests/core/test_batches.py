"""Evaluation passes with test-time augmentation: the views of each image and how their answers are combined."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_cifar.core.batches import TTA_VIEWS, predict_batches, tta_mode
from resnet_cifar.errors import ResnetCifarError


class Recorder(nn.Module):
    """Logits that depend on every pixel (a linear map of the flattened image); remembers the images it saw."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 6 * 6, 4)
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(images.clone())
        return self.linear(images.flatten(1))


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(1)
    return [(torch.randn(5, 3, 6, 6), torch.randint(0, 4, (5,))) for _ in range(2)]


def test_flip_translate_sees_six_views_and_weighs_them_as_airbench() -> None:
    model = Recorder()
    batches = _batches()
    predictions = predict_batches(model, batches, tta="flip-translate")
    images = batches[0][0]
    views = model.seen[:6]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    down_right, up_left = padded[..., :6, :6], padded[..., 2:, 2:]
    expected = [images, images.flip(3), down_right, down_right.flip(3), up_left, up_left.flip(3)]
    assert all(torch.equal(view, want) for view, want in zip(views, expected))
    assert torch.equal(down_right[..., 1:, 1:], images[..., :5, :5])  # moved one pixel down and right
    with torch.no_grad():
        weights = torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
        probabilities = sum(w * F.softmax(model.linear(v.flatten(1)), 1) for w, v in zip(weights, expected))
    assert torch.allclose(predictions.probabilities[:5], probabilities, atol=1e-6)
    assert predictions.tta == "flip-translate" and predictions.view_logits.shape == (5, 10, 4)


def test_flip_averages_the_image_and_its_mirror_and_off_sees_the_image_only() -> None:
    batches = _batches()
    model = Recorder()
    flipped = predict_batches(model, batches, tta=True)  # the older switch still means flip
    plain = predict_batches(model, batches)
    with torch.no_grad():
        mirrored = torch.cat([F.softmax(model.linear(x.flip(3).flatten(1)), 1) for x, _ in batches])
    assert torch.allclose(flipped.probabilities, (plain.probabilities + mirrored) / 2, atol=1e-6)
    assert plain.view_logits is None and plain.tta == "off" and len(model.seen) == 6  # 2 + 2 views, then 2


def test_views_keep_the_channels_last_layout() -> None:
    images = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    for view in TTA_VIEWS["flip-translate"][0][1:]:
        assert view(images).is_contiguous(memory_format=torch.channels_last)


def test_unknown_tta_is_refused_with_the_choices() -> None:
    assert tta_mode(False) == "off" and tta_mode("flip-translate") == "flip-translate"
    with pytest.raises(ResnetCifarError, match="choose one of off, flip, flip-translate"):
        tta_mode("rotate")
