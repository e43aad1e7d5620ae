"""The CIFAR-10-C corruptions: every one at every severity, each against its reference formula on fixed images
(impulse responses, flat images, the reference's own statements), determinism and the bad options."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from resnet_cifar import ResnetCifarError
from resnet_cifar.data import corruptions as C
from resnet_cifar.data import load_dataset

pytest.importorskip("scipy", reason="the corruptions need the corruptions extra (SciPy)")


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    data = load_dataset("cifar10-sample", "test")
    return np.ascontiguousarray(data.images[:40].permute(0, 2, 3, 1).numpy())


def _flat(value: int, count: int = 64) -> np.ndarray:
    return np.full((count, 32, 32, 3), value, dtype=np.uint8)


def _change(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.abs(after.astype(float) - before.astype(float)).mean())


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_each_corruption_is_deterministic_and_grows_with_severity(name, photos) -> None:
    outputs = {severity: C.corrupt(photos, name, severity, seed=3) for severity in C.SEVERITIES}
    for out in outputs.values():
        assert out.shape == photos.shape and out.dtype == np.uint8
    assert np.array_equal(outputs[3], C.corrupt(photos, name, 3, seed=3))
    if name != "elastic_transform":  # the reference's elastic severity 1 has the largest affine jitter
        assert _change(photos, outputs[5]) > _change(photos, outputs[1]) > 0
    deterministic = ("defocus_blur", "gaussian_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                     "saturate", "zoom_blur")
    assert np.array_equal(outputs[2], C.corrupt(photos, name, 2, seed=4)) == (name in deterministic)


@pytest.mark.parametrize(("name", "severity", "scale"), [("gaussian_noise", 1, 0.04), ("gaussian_noise", 5, 0.10),
                                                         ("speckle_noise", 1, 0.5 * 0.06),
                                                         ("speckle_noise", 5, 0.5 * 0.2),
                                                         ("shot_noise", 1, (0.5 / 500) ** 0.5),
                                                         ("shot_noise", 5, (0.5 / 50) ** 0.5)])
def test_the_noises_have_the_references_spread(name, severity, scale) -> None:
    grey = _flat(128)  # 0.502: clipping at 0 and 1 is negligible
    out = C.CORRUPTIONS[name][1](grey, severity, np.random.default_rng(0))
    assert out.mean() == pytest.approx(128, abs=0.5)
    assert out.std() == pytest.approx(scale * 255, rel=0.03)


@pytest.mark.parametrize(("severity", "amount"), [(1, 0.01), (5, 0.07)])
def test_impulse_noise_sets_the_references_share_of_values_to_black_or_white(severity, amount) -> None:
    out = C.impulse_noise(_flat(128), severity, np.random.default_rng(0))
    hit = (out == 0) | (out == 255)
    assert hit.mean() == pytest.approx(amount, rel=0.05) and (out[hit] == 255).mean() == pytest.approx(0.5, abs=0.03)


def _impulse() -> np.ndarray:
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 16, 16] = 255
    return image


@pytest.mark.parametrize(("severity", "sigma"), [(1, 0.4), (5, 1.0)])
def test_gaussian_blur_spreads_a_point_as_the_sampled_gaussian(severity, sigma) -> None:
    out = C.gaussian_blur(_impulse(), severity, np.random.default_rng(0))[0, :, :, 0] / 255
    reach = int(4 * sigma + 0.5)  # scikit-image's truncate=4
    taps = np.exp(-np.arange(-reach, reach + 1) ** 2 / (2 * sigma ** 2))
    expected = np.outer(taps, taps) / taps.sum() ** 2
    assert np.allclose(out[16 - reach:17 + reach, 16 - reach:17 + reach], expected, atol=1e-9)
    assert out.sum() == pytest.approx(1.0)


def test_defocus_blur_at_severity_1_is_a_point_smoothed_by_a_3x3_gaussian() -> None:
    out = C.defocus_blur(_impulse(), 1, np.random.default_rng(0))[0, :, :, 0] / 255
    taps = np.exp(-np.array([-1, 0, 1]) ** 2 / (2 * 0.4 ** 2))  # radius 0.3: the disk is its centre alone
    expected = np.outer(taps, taps) / taps.sum() ** 2
    assert np.allclose(out[15:18, 15:18], expected, atol=1e-9) and out.sum() == pytest.approx(1.0)
    wide = C.defocus_blur(_impulse(), 5, np.random.default_rng(0))[0, :, :, 0]
    assert wide[16, 16] / 255 < out[16, 16] / 4  # radius 1.5: the point spread over its 3x3 disk


def test_motion_blur_smears_a_point_along_the_angle_with_imagemagicks_kernel() -> None:
    point = _impulse().astype(float)
    out = C._motion_blur(point, radius=6, sigma=2, angles=np.array([0.0]))[0, :, :, 0] / 255
    taps = np.exp(-np.arange(13) ** 2 / (2 * 2 ** 2))
    # at angle 0 tap i reads the pixel i to the right: the point shows at columns 16 - i of its row
    assert np.allclose(out[16, 4:17][::-1], taps / taps.sum()) and out.sum() == pytest.approx(1.0)
    down = C._motion_blur(point, radius=6, sigma=2, angles=np.array([90.0]))[0, :, :, 0] / 255
    assert np.allclose(down[4:17, 16][::-1], taps / taps.sum())


def test_glass_blur_does_what_the_references_statement_does() -> None:
    """The reference's loop, statement for statement (its swap of NumPy views), against the vectorised pass."""
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    for severity, (sigma, iterations) in ((1, (0.05, 1)), (5, (0.4, 2))):
        ours = C.glass_blur(images, severity, np.random.default_rng(5))
        rng = np.random.default_rng(5)
        x = (C._gaussian(images / 255.0, sigma) * 255).astype(np.uint8)
        for _ in range(iterations):
            dx, dy = rng.integers(-1, 1, size=(2, 2, 30, 30))
            for h in range(31, 1, -1):
                for w in range(31, 1, -1):
                    for n in range(2):
                        h_prime, w_prime = h + dy[n, h - 2, w - 2], w + dx[n, h - 2, w - 2]
                        x[n, h, w], x[n, h_prime, w_prime] = x[n, h_prime, w_prime], x[n, h, w]
        assert np.array_equal(ours, np.clip(C._gaussian(x / 255.0, sigma), 0, 1) * 255)


@pytest.mark.parametrize(("severity", "scale"), [(1, 0.75), (5, 0.15)])
def test_contrast_pulls_each_channel_towards_its_mean(severity, scale, photos) -> None:
    x = photos / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = np.clip((x - means) * scale + means, 0, 1) * 255
    assert np.allclose(C.contrast(photos, severity, np.random.default_rng(0)), expected)


@pytest.mark.parametrize(("name", "severity"), [("brightness", 1), ("brightness", 5), ("saturate", 1),
                                                ("saturate", 5)])
def test_brightness_and_saturation_change_hsv_as_the_reference(name, severity, photos) -> None:
    """Checked pixel by pixel with Python's own colorsys."""
    out = C.CORRUPTIONS[name][1](photos[:2], severity, np.random.default_rng(0))
    value = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    scale, shift = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    for pixel, changed in zip(photos[:2].reshape(-1, 3)[::17], out.reshape(-1, 3)[::17]):
        h, s, v = colorsys.rgb_to_hsv(*(pixel / 255.0))
        if name == "brightness":
            v = min(max(v + value, 0), 1)
        else:
            s = min(max(s * scale + shift, 0), 1)
        assert np.allclose(changed, np.array(colorsys.hsv_to_rgb(h, s, v)) * 255, atol=1e-6)


def test_fog_keeps_black_black_and_lays_a_fractal_over_the_rest(photos) -> None:
    assert (C.fog(_flat(0, 4), 5, np.random.default_rng(0)) == 0).all()  # x * max / (max + c) with max 0
    maps = C._plasma(8, 32, 2.0, np.random.default_rng(0))
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    assert maps.std(axis=(1, 2)).min() > 0.05


def test_zoom_blur_keeps_a_flat_image_flat() -> None:
    out = C.zoom_blur(_flat(100, 2), 5, np.random.default_rng(0))
    assert np.allclose(out, 100, atol=1e-3)


def test_elastic_sampling_at_the_pixels_own_places_changes_nothing(photos) -> None:
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    x = photos[:3] / 255.0
    for mode in ("mirror", "reflect"):
        assert np.allclose(C._sample(x, np.broadcast_to(rows, (3, 32, 32)), np.broadcast_to(cols, (3, 32, 32)),
                                     mode), x)


def test_snow_and_frost_whiten_and_mud_darkens(photos) -> None:
    for name in ("snow", "frost"):
        assert C.corrupt(photos, name, 5, 0).mean() > photos.mean() + 10
    assert C.corrupt(photos, "spatter", 5, 0).mean() < photos.mean()
    assert set(C.NOT_COMPARABLE) == {"frost", "spatter"} and len(C.BENCHMARK) == 15


def test_bad_names_severities_and_images_are_refused(photos) -> None:
    with pytest.raises(ResnetCifarError, match="unknown corruption fogg: choose all or any of gaussian_noise"):
        C.check_corruptions(["fogg"])
    assert C.check_corruptions(["all"]) == list(C.CORRUPTIONS)
    assert C.check_corruptions(["fog", "snow", "fog"]) == ["fog", "snow"]
    for severity in (0, 6):
        with pytest.raises(ResnetCifarError, match="severity .* is not one of 1-5"):
            C.corrupt(photos, "fog", severity, 0)
    with pytest.raises(ResnetCifarError, match="uint8 RGB"):
        C.corrupt(photos.astype(np.float32), "fog", 1, 0)


def _cv2():
    return pytest.importorskip("cv2", reason="the OpenCV cross-checks need opencv-python-headless (dev extra)")


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_the_defocus_disk_and_filter_equal_opencvs(severity, photos) -> None:
    cv2 = _cv2()
    radius, alias_blur = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    grid = np.arange(-8, 9)
    x, y = np.meshgrid(grid, grid)
    aliased = np.array(x ** 2 + y ** 2 <= radius ** 2, dtype=np.float32)
    aliased /= aliased.sum()
    theirs = cv2.GaussianBlur(aliased, ksize=(3, 3), sigmaX=alias_blur)  # the reference's disk()
    assert np.allclose(C._disk(radius, alias_blur), theirs, atol=1e-6)
    image = photos[0] / 255.0
    filtered = np.stack([cv2.filter2D(image[:, :, d], -1, theirs) for d in range(3)], axis=-1)
    ours = C.defocus_blur(photos[:1], severity, np.random.default_rng(0))[0]
    assert np.abs(ours - np.clip(filtered, 0, 1) * 255).max() < 1e-3


def test_grey_and_histogram_equalisation_equal_opencvs(photos) -> None:
    cv2 = _cv2()
    image = (photos[0] / 255.0).astype(np.float32)
    assert np.allclose(C._grey(image)[..., 0], cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), atol=1e-6)
    rng = np.random.default_rng(0)
    for layer in (rng.integers(0, 21, size=(32, 32), dtype=np.uint8), photos[1, :, :, 0]):
        assert np.array_equal(C._equalised(layer), cv2.equalizeHist(layer))


def test_the_elastic_affine_warp_equals_opencvs(photos) -> None:
    """Severity 1 has no displacement field: only the random affine warp of the reference's three points."""
    cv2 = _cv2()
    ours = C.elastic_transform(photos[:1], 1, np.random.default_rng(7))[0]
    centre, half = np.float32(16), 10
    source = np.float32([[centre + half, centre + half], [centre + half, centre - half], [centre - half,
                         centre - half]])
    target = source + np.random.default_rng(7).uniform(-2.56, 2.56, size=(1, 3, 2)).astype(np.float32)[0]
    warp = cv2.getAffineTransform(source, target)
    theirs = cv2.warpAffine((photos[0] / 255.0).astype(np.float32), warp, (32, 32), borderMode=cv2.BORDER_REFLECT_101)
    assert np.abs(ours - np.clip(theirs, 0, 1) * 255).max() < 1e-2  # float32 rounding


@pytest.mark.parametrize("severity", [1, 5])
def test_pixelate_and_jpeg_are_the_references_pillow_steps(severity, photos) -> None:
    from io import BytesIO

    from PIL import Image

    factor, quality = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1], (80, 65, 58, 50, 40)[severity - 1]
    image = Image.fromarray(photos[0])
    small = (int(32 * factor), int(32 * factor))
    pixelated = np.asarray(image.resize(small, Image.BOX).resize((32, 32), Image.BOX))
    assert np.array_equal(C.corrupt(photos[:1], "pixelate", severity, 0)[0], pixelated)
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    assert np.array_equal(C.corrupt(photos[:1], "jpeg_compression", severity, 0)[0], np.asarray(Image.open(buffer)))
