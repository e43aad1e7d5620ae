"""Mixup and CutMix: what a mixed batch holds, how its targets are weighted, and how the draws are seeded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet_cifar.data import ImageSet
from resnet_cifar.data.loader import BatchLoader
from resnet_cifar.data.mixing import MixDraws, Mixing, mix_batch, paste_box

CPU = torch.device("cpu")


def _draws(weight: float, cut: bool, centre: tuple[float, float] = (0.5, 0.5)) -> MixDraws:
    return MixDraws(np.array([weight]), np.array([cut]), np.array([centre[0]]), np.array([centre[1]]))


def _batch(n: int = 6, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, side, side).clone()
    return images, torch.tensor([0, 1, 2, 3, 1, 0][:n])


def test_mixup_blends_each_image_with_its_mirrored_partner_and_the_labels_alike() -> None:
    images, labels = _batch()
    mixed, targets = mix_batch(images, labels, 4, _draws(0.7, cut=False), 0)
    expected = 0.7 * images + 0.3 * images.flip(0)
    assert torch.allclose(mixed, expected)
    assert targets.shape == (6, 4) and torch.allclose(targets.sum(1), torch.ones(6))
    assert targets[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])  # images 0 and 5 both have label 0
    assert targets[2].tolist() == pytest.approx([0.0, 0.0, 0.7, 0.3])  # image 2 (label 2) with image 3 (label 3)
    assert targets[3].tolist() == pytest.approx([0.0, 0.0, 0.3, 0.7])


def test_cutmix_pastes_the_partners_box_and_weights_the_labels_by_the_area_left() -> None:
    images, labels = _batch(side=10)
    mixed, targets = mix_batch(images, labels, 4, _draws(0.64, cut=True), 0)
    from_partner = mixed == images.flip(0)
    from_own = mixed == images
    assert bool((from_partner | from_own).all())
    covered = from_partner[2, 0]  # image 2 (value 2) and its partner image 3 (value 3) differ everywhere
    assert int(covered.sum()) == 36  # a 6x6 box: sqrt(1 - 0.64) of each side of 10
    rows, cols = covered.any(1).nonzero().flatten(), covered.any(0).nonzero().flatten()
    assert rows.tolist() == list(range(2, 8)) and cols.tolist() == list(range(2, 8))
    assert targets[2].tolist() == pytest.approx([0.0, 0.0, 0.64, 0.36])


def test_a_box_clipped_at_the_border_gives_the_labels_the_area_really_pasted() -> None:
    images, partner = torch.zeros(1, 1, 10, 10), torch.ones(1, 1, 10, 10)
    mixed, kept = paste_box(images, partner, 0.64, 0.0, 0.0)  # a 6x6 box centred on the corner: 3x3 inside
    assert int(mixed.sum()) == 9 and kept == pytest.approx(1 - 9 / 100)


def test_draws_follow_the_generator_and_the_options() -> None:
    both = Mixing(mixup=0.2, cutmix=1.0)
    a = MixDraws.draw(400, both, torch.Generator().manual_seed(3))
    b = MixDraws.draw(400, both, torch.Generator().manual_seed(3))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("weight", "cut", "centre_y", "centre_x"))
    assert 150 < a.cut.sum() < 250 and ((a.weight >= 0) & (a.weight <= 1)).all()
    # Beta(0.2, 0.2) keeps most weights near 0 or 1; Beta(1, 1) is uniform.
    assert np.mean(np.abs(a.weight[~a.cut] - 0.5) > 0.4) > 0.5
    assert 0.1 < np.mean(np.abs(a.weight[a.cut] - 0.5) > 0.4) < 0.3
    mixup_only = MixDraws.draw(50, Mixing(mixup=0.2), torch.Generator().manual_seed(3))
    cutmix_only = MixDraws.draw(50, Mixing(cutmix=1.0), torch.Generator().manual_seed(3))
    assert not mixup_only.cut.any() and cutmix_only.cut.all()


def _loader(mixing: Mixing) -> BatchLoader:
    images = (torch.randperm(48 * 3 * 8 * 8) % 250 + 1).to(torch.uint8).view(48, 3, 8, 8)
    data = ImageSet(images, torch.arange(48) % 4, ["a", "b", "c", "d"])
    return BatchLoader(data, 12, device=CPU, mean=[0.5] * 3, std=[0.25] * 3, shuffle=True, mixing=mixing, seed=7,
                       drop_last=True)


def test_the_loader_mixes_its_batches_the_same_way_when_resumed_mid_epoch() -> None:
    loader = _loader(Mixing(mixup=0.2, cutmix=1.0))
    whole = list(loader.epoch(3))
    resumed = list(loader.epoch(3, start_batch=2))
    assert len(whole) == 4 and all(t.shape == (12, 4) for _, t in whole)
    for (images, targets), (again, again_targets) in zip(whole[2:], resumed):
        assert torch.equal(images, again) and torch.equal(targets, again_targets)
    plain = list(_loader(Mixing()).epoch(3))
    assert not any(torch.equal(m, p) for (m, _), (p, _) in zip(whole, plain))  # every batch was mixed
