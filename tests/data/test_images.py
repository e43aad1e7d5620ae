"""Decoding user images of every common kind, and the ImageFolder dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_cifar import ResnetCifarError
from resnet_cifar.data import load_dataset
from resnet_cifar.data.images import decode_image


@pytest.mark.parametrize("suffix,mode", [(".png", "RGB"), (".jpg", "RGB"), (".png", "L"), (".png", "RGBA"),
                                         (".png", "P"), (".bmp", "RGB"), (".jpg", "CMYK"), (".gif", "P")])
def test_common_formats_decode_to_rgb_of_the_requested_size(tmp_path, make_image, suffix: str, mode: str) -> None:
    path = make_image(tmp_path / f"image{suffix}", size=(50, 20), mode=mode)
    image = decode_image(path, (16, 40))
    assert image.shape == (3, 16, 40) and image.dtype == torch.uint8
    with Image.open(path) as source:  # resizing keeps each channel's mean colour: the pixels are the file's
        expected = np.asarray(source.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    assert np.abs(image.double().mean(dim=(1, 2)).numpy() - expected).max() < 4


def test_a_lossless_image_of_the_requested_size_decodes_to_its_exact_pixels(tmp_path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "exact.png")
    decoded = decode_image(tmp_path / "exact.png", (24, 32))
    assert torch.equal(decoded, torch.from_numpy(pixels).permute(2, 0, 1))


def test_transparent_pixels_become_white(tmp_path) -> None:
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert torch.all(decode_image(tmp_path / "clear.png", (8, 8)) == 255)


def test_sixteen_bit_grayscale_is_rescaled_not_clipped(tmp_path) -> None:
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert torch.all((decode_image(tmp_path / "deep.png", (8, 8)) - 128).abs() <= 1)


def test_grayscale_becomes_three_equal_channels(tmp_path, make_image) -> None:
    image = decode_image(make_image(tmp_path / "g.png", mode="L"), (16, 16))
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_animated_gif_uses_the_first_frame(tmp_path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image = decode_image(tmp_path / "anim.gif", (8, 8))
    assert image[0].float().mean() > 200 and image[2].float().mean() < 50


@pytest.mark.parametrize("content,message", [(b"hello, not an image", "not an image"),
                                             (b"", "not an image")])
def test_non_images_are_clear_errors(tmp_path, content: bytes, message: str) -> None:
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ResnetCifarError, match=message):
        decode_image(tmp_path / "x.png", (32, 32))


def test_truncated_jpeg_is_a_clear_error(tmp_path, make_image) -> None:
    path = make_image(tmp_path / "t.jpg", size=(64, 64))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ResnetCifarError, match="cannot be decoded"):
        decode_image(path, (32, 32))


def _tree(root, make_image, classes=("cat", "dog"), per_class=3) -> None:
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                make_image(root / split / name / f"{i}.png", size=(20 + i, 24), seed=10 * c + i)


def test_image_folder_dataset(tmp_path, make_image) -> None:
    _tree(tmp_path, make_image)
    train = load_dataset("folder", "train", tmp_path, image_size=(16, 16))
    assert train.class_names == ["cat", "dog"] and train.images.shape == (6, 3, 16, 16)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("classes,message", [((), "is not a folder"), (("only",), "at least 2")])
def test_image_folder_errors(tmp_path, make_image, classes, message: str) -> None:
    if classes:
        _tree(tmp_path, make_image, classes)
    with pytest.raises(ResnetCifarError, match=message):
        load_dataset("folder", "train", tmp_path)


def test_image_folder_without_images(tmp_path) -> None:
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
    with pytest.raises(ResnetCifarError, match="holds no images"):
        load_dataset("folder", "train", tmp_path)
