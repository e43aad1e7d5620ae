"""ImageSet checks, channel statistics and the class-balanced validation split."""
from __future__ import annotations

import pytest
import torch

from resnet_cifar import ResnetCifarError
from resnet_cifar.data import ImageSet, load_dataset, split_validation


def _data(n: int = 100, classes: int = 5) -> ImageSet:
    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % classes, [f"c{i}" for i in range(classes)])


def test_validation_split_is_balanced_disjoint_and_seeded() -> None:
    data = _data()
    train, val = split_validation(data, 20, seed=3)
    assert len(train) == 80 and val.labels.bincount().tolist() == [4] * 5
    key = lambda s: {tuple(img.flatten().tolist()) for img in s.images}  # noqa: E731
    assert not key(train) & key(val) and len(key(train) | key(val)) == len(key(data))
    assert torch.equal(split_validation(data, 20, seed=3)[1].images, val.images)
    assert not torch.equal(split_validation(data, 20, seed=4)[1].images, val.images)


def test_validation_split_spreads_the_remainder() -> None:
    _, val = split_validation(_data(), 7, seed=0)
    assert sorted(val.labels.bincount().tolist()) == [1, 1, 1, 2, 2]


@pytest.mark.parametrize("size", [0, 100, 96])
def test_impossible_validation_split_is_refused(size: int) -> None:
    with pytest.raises(ResnetCifarError):
        split_validation(_data(), size, seed=0)


def test_channel_stats_of_known_pixels() -> None:
    images = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255
    mean, std = ImageSet(images, torch.tensor([0, 1]), ["a", "b"]).channel_stats()
    assert mean == pytest.approx([0.5, 0.0, 0.0]) and std[0] == pytest.approx(0.5345, abs=1e-4)


def test_labels_out_of_range_are_refused() -> None:
    with pytest.raises(ResnetCifarError, match="labels must lie in 0..1"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"])


def test_bundled_sample_is_real_balanced_cifar10() -> None:
    train, test = load_dataset("cifar10-sample", "train"), load_dataset("cifar10-sample", "test")
    assert train.images.shape == (1000, 3, 32, 32) and test.images.shape == (500, 3, 32, 32)
    assert train.labels.bincount().tolist() == [100] * 10 and test.labels.bincount().tolist() == [50] * 10
    assert train.class_names[:3] == ["airplane", "automobile", "bird"]
    mean, _ = train.channel_stats()
    assert all(0.4 < m < 0.55 for m in mean)  # natural images, not noise or zeros


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(ResnetCifarError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", "train")
    with pytest.raises(ResnetCifarError, match="unknown split 'val'"):
        load_dataset("cifar10-sample", "val")


def test_train_subset_takes_a_balanced_seeded_part_of_the_training_images() -> None:
    from resnet_cifar.training.build import load_splits
    from resnet_cifar.training.config import TrainConfig

    splits = load_splits(TrainConfig(dataset="cifar10-sample", train_subset=100, val_split=50))
    assert len(splits.train) == 100 and len(splits.val) == 50 and len(splits.test) == 500
    assert torch.bincount(splits.train.labels).tolist() == [10] * 10
    other = load_splits(TrainConfig(dataset="cifar10-sample", train_subset=100, val_split=50, seed=1)).train
    assert not torch.equal(other.images, splits.train.images)
    with pytest.raises(ResnetCifarError, match="--train-subset must be an integer >= 0"):
        TrainConfig(train_subset=-5)
