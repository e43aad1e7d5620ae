"""The on-device batch loader: crops, flips, cutout, normalisation, seeding and resume alignment."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_cifar.data import ImageSet
from resnet_cifar.data.loader import (
    NO_AUGMENT,
    Augment,
    AugmentDraws,
    BatchLoader,
    crop_and_flip,
    cutout,
    pad_images,
)
from resnet_cifar.errors import ResnetCifarError

CPU = torch.device("cpu")


def _images(n: int = 16, size: int = 8) -> torch.Tensor:
    # Distinct, non-zero pixel values so any crop offset can be recognised (zero is the padding value).
    return (torch.randperm(n * 3 * size * size) % 250 + 1).to(torch.uint8).view(n, 3, size, size)


def _dataset(n: int = 40) -> ImageSet:
    return ImageSet(_images(n), torch.arange(n) % 4, ["a", "b", "c", "d"])


def _crop_and_flip(images: torch.Tensor, padding: int, flip: bool, seed: int) -> torch.Tensor:
    draws = AugmentDraws.draw(len(images), Augment(padding, flip), images.shape[-2:], torch.Generator().manual_seed(seed))
    return crop_and_flip(F.pad(images, (padding,) * 4), padding, draws.dy, draws.dx, draws.mirrored)


def _offsets_matching(image: torch.Tensor, crop: torch.Tensor, padding: int) -> list[tuple[int, int]]:
    padded = F.pad(image, (padding,) * 4)
    size = image.shape[-1]
    return [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
            if torch.equal(padded[:, dy:dy + size, dx:dx + size], crop)]


def test_every_crop_is_a_window_of_the_padded_image() -> None:
    images = _images(32)
    crops = _crop_and_flip(images, 4, False, seed=1)
    offsets = [_offsets_matching(image, crop, 4) for image, crop in zip(images, crops)]
    assert all(len(o) == 1 for o in offsets)
    assert len({o[0] for o in offsets}) > 8  # each image gets its own offset


def test_flips_are_per_image() -> None:
    images = _images(64)
    flipped = _crop_and_flip(images, 0, True, seed=2)
    mirrored = [torch.equal(f, i.flip(2)) for i, f in zip(images, flipped)]
    unchanged = [torch.equal(f, i) for i, f in zip(images, flipped)]
    assert all(m != u for m, u in zip(mirrored, unchanged))
    assert 16 < sum(mirrored) < 48


def test_crop_and_flip_together_give_a_window_of_the_padded_image_or_its_mirror() -> None:
    images = _images(32)
    out = _crop_and_flip(images, 4, True, seed=4)
    straight = [len(_offsets_matching(image, crop, 4)) for image, crop in zip(images, out)]
    mirrored = [len(_offsets_matching(image.flip(2), crop, 4)) for image, crop in zip(images, out)]
    assert all(s + m == 1 for s, m in zip(straight, mirrored)) and 4 < sum(mirrored) < 28


def test_cutout_blacks_out_a_square_of_the_given_side_inside_the_image() -> None:
    images = torch.full((200, 3, 16, 16), 7, dtype=torch.uint8)
    draws = AugmentDraws.draw(200, Augment(cutout=6), (16, 16), torch.Generator().manual_seed(3))
    holes = (cutout(images, 6, draws.cy, draws.cx) == 0).all(1)
    sizes = holes.sum((1, 2))
    assert sizes.max() == 36 and sizes.min() >= 9  # clipped at the border: at least a 3x3 corner remains
    for hole in holes[:20]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole.sum() == len(rows) * len(cols)  # a rectangle, not scattered pixels


def test_same_seed_same_batches_and_other_seed_or_epoch_differ() -> None:
    data = _dataset()

    def batches(seed: int, epoch: int) -> list[torch.Tensor]:
        loader = BatchLoader(data, 8, device=CPU, mean=[0.5] * 3, std=[0.2] * 3, shuffle=True,
                             augment=Augment(cutout=3), seed=seed)
        return [x for x, _ in loader.epoch(epoch)]

    first, again = batches(0, 1), batches(0, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(torch.cat(first), torch.cat(batches(1, 1)))
    assert not torch.equal(torch.cat(first), torch.cat(batches(0, 2)))


def test_shuffle_visits_every_image_once_per_epoch() -> None:
    data = _dataset(40)
    loader = BatchLoader(data, 8, device=CPU, mean=[0.0] * 3, std=[1.0] * 3, shuffle=True)
    seen = torch.cat([x for x, _ in loader.epoch(0)]) * 255
    assert sorted(seen.round().to(torch.uint8).view(40, -1).sum(1).tolist()) == \
        sorted(data.images.view(40, -1).sum(1).tolist())


def test_resume_mid_epoch_yields_the_remaining_batches_exactly() -> None:
    loader = BatchLoader(_dataset(), 8, device=CPU, mean=[0.5] * 3, std=[0.2] * 3, shuffle=True,
                         augment=Augment(cutout=3), seed=5)
    full = list(loader.epoch(3))
    tail = list(loader.epoch(3, start_batch=2))
    assert len(tail) == len(full) - 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[2:], tail))


def test_normalisation_uses_the_given_mean_and_std() -> None:
    data = _dataset(8)
    loader = BatchLoader(data, 8, device=CPU, mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 0.125])
    x, labels = next(loader.epoch())
    expected = (data.images.float() / 255 - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / \
        torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5) and torch.equal(labels, data.labels)


def test_without_augmentation_and_shuffle_batches_are_the_images_in_order() -> None:
    data = _dataset(20)
    loader = BatchLoader(data, 8, device=CPU, mean=[0.0] * 3, std=[1.0 / 255] * 3, augment=NO_AUGMENT)
    batches = list(loader.epoch())
    assert [len(y) for _, y in batches] == [8, 8, 4]
    assert torch.equal(torch.cat([x for x, _ in batches]).round().to(torch.uint8), data.images)


def test_drop_last_and_channels_last() -> None:
    loader = BatchLoader(_dataset(20), 8, device=CPU, mean=[0.0] * 3, std=[1.0] * 3, drop_last=True,
                         channels_last=True)
    batches = list(loader.epoch())
    assert len(loader) == 2 and len(batches) == 2
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)


_SHARED_DATA = _dataset(48)


def _loader(batch_size: int, rank: int = 0, world_size: int = 1, **options) -> BatchLoader:
    return BatchLoader(_SHARED_DATA, batch_size, device=CPU, mean=[0.5] * 3, std=[0.2] * 3, shuffle=True,
                       augment=Augment(cutout=3), seed=7, rank=rank, world_size=world_size, **options)


def test_ranks_split_every_batch_of_the_single_process_run() -> None:
    single = list(_loader(12, drop_last=True).epoch(2))
    ranks = [list(_loader(12, rank, 3, drop_last=True).epoch(2)) for rank in range(3)]
    assert all(len(shares) == len(single) == 4 for shares in ranks)
    for step, (images, labels) in enumerate(single):
        assert all(len(shares[step][1]) == 4 for shares in ranks)
        assert torch.equal(torch.cat([shares[step][0] for shares in ranks]), images)
        assert torch.equal(torch.cat([shares[step][1] for shares in ranks]), labels)


def test_augmentation_of_an_epoch_does_not_depend_on_the_batch_size() -> None:
    small = torch.cat([x for x, _ in _loader(4).epoch(1)])
    large = torch.cat([x for x, _ in _loader(16).epoch(1)])
    assert torch.equal(small, large)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused() -> None:
    with pytest.raises(ResnetCifarError, match="multiple of 3"):
        _loader(10, 0, 3)


def test_order_and_augmentation_are_drawn_on_the_cpu_whatever_the_device() -> None:
    """A run continued on another kind of device (GPU <-> CPU) sees the same images in the same order."""
    data = _dataset()
    plans = [BatchLoader(data, 8, device=torch.device(name), mean=[0.5] * 3, std=[0.25] * 3, shuffle=True,
                         augment=Augment(cutout=3), seed=5).plan(2) for name in ("cpu", "meta")]
    (order, draws, _), (other_order, other_draws, _) = plans
    assert order.device.type == "cpu" and torch.equal(order, other_order)
    for name in ("dy", "dx", "mirrored", "cy", "cx"):
        assert torch.equal(getattr(draws, name), getattr(other_draws, name)), name


def _mirrored_per_image(loader: BatchLoader, data: ImageSet, epoch: int) -> dict[int, bool]:
    """Which images ``epoch`` shows mirrored (labels name the images; no crop, so each is itself or its mirror)."""
    shown = {}
    for images, labels in loader.epoch(epoch):
        for image, label in zip(images.round().to(torch.uint8), labels.tolist()):
            source = data.images[label]
            assert torch.equal(image, source) or torch.equal(image, source.flip(2))
            shown[label] = torch.equal(image, source.flip(2))
    return shown


def test_alternate_flip_mirrors_each_image_in_every_other_epoch() -> None:
    data = ImageSet(_images(40), torch.arange(40), [str(i) for i in range(40)])
    loader = BatchLoader(data, 8, device=CPU, mean=[0.0] * 3, std=[1.0 / 255] * 3, shuffle=True,
                         augment=Augment(0, True, alternate_flip=True), seed=3)
    epochs = [_mirrored_per_image(loader, data, epoch) for epoch in (1, 2, 3, 4)]
    assert all(len(shown) == 40 for shown in epochs)
    assert 8 < sum(epochs[0].values()) < 32  # the first epoch's flips are random per image
    for label in range(40):  # then each image alternates
        assert [shown[label] for shown in epochs] == [epochs[0][label], not epochs[0][label]] * 2
    other_seed = BatchLoader(data, 8, device=CPU, mean=[0.0] * 3, std=[1.0 / 255] * 3, shuffle=True,
                             augment=Augment(0, True, alternate_flip=True), seed=4)
    assert _mirrored_per_image(other_seed, data, 1) != epochs[0]


def test_random_flip_does_not_alternate() -> None:
    data = ImageSet(_images(40), torch.arange(40), [str(i) for i in range(40)])
    loader = BatchLoader(data, 8, device=CPU, mean=[0.0] * 3, std=[1.0 / 255] * 3, shuffle=True,
                         augment=Augment(0, True), seed=3)
    first, second = (_mirrored_per_image(loader, data, epoch) for epoch in (1, 2))
    assert any(first[label] == second[label] for label in range(40))


def test_reflect_padding_mirrors_the_border_as_torch_does() -> None:
    images = _images(3, 6)
    assert torch.equal(pad_images(images, 2, reflect=True),
                       F.pad(images.float(), (2,) * 4, mode="reflect").to(torch.uint8))
    assert torch.equal(pad_images(images, 2, reflect=False), F.pad(images, (2,) * 4))
    assert pad_images(images, 0, reflect=True) is images


def test_reflect_crops_are_windows_of_the_reflected_image() -> None:
    data = _dataset(16)
    loader = BatchLoader(data, 16, device=CPU, mean=[0.0] * 3, std=[1.0 / 255] * 3,
                         augment=Augment(2, False, reflect=True), seed=1)
    crops = next(loader.epoch(1))[0].round().to(torch.uint8)
    reflected = F.pad(data.images.float(), (2,) * 4, mode="reflect").to(torch.uint8)
    for image, crop in zip(reflected, crops):
        assert any(torch.equal(image[:, dy:dy + 8, dx:dx + 8], crop) for dy in range(5) for dx in range(5))
    assert (crops != 0).all()  # no zero padding shows
