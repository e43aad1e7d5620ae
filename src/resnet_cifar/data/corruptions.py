"""The common corruptions of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019) with the parameters of the
benchmark's CIFAR generator (``make_cifar_c.py``, not its ImageNet one), on batches of images.

Each corruption takes uint8 images (N, H, W, 3), a severity 1-5 and a NumPy generator, and returns floats in
[0, 255]; ``corrupt`` truncates them to uint8 as the reference does. Everything is vectorised over the batch (no
Python loop over pixels) on NumPy, SciPy (``pip install 'resnet-cifar[corruptions]'``), Pillow and matplotlib.
Where the reference called OpenCV or ImageMagick the same operation is written here: ImageMagick's motion blur
(its kernel and offsets), OpenCV's disk filter, affine warp and grey conversion. Two cannot be the reference's:
``frost`` overlays photographs of frost whose licence is unknown, replaced by a generated frost texture, and
``spatter``'s water drops (severities 1-3) use OpenCV's Canny edges, histogram equalisation and distance
transform, approximated here; their numbers are not comparable with the published benchmark's (``NOT_COMPARABLE``).
"""
from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image

from ..errors import ResnetCifarError

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
SEVERITIES = (1, 2, 3, 4, 5)


def _ndimage():
    try:
        from scipy import ndimage
    except ImportError:
        raise ResnetCifarError("the corruptions need SciPy: pip install 'resnet-cifar[corruptions]'") from None
    return ndimage


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _pixels(unit: np.ndarray) -> np.ndarray:
    return np.clip(unit, 0, 1) * 255


# ---- noise ----

def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    x = _unit(images)
    return _pixels(x + rng.normal(scale=scale, size=x.shape))


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = (500, 250, 100, 75, 50)[severity - 1]
    return _pixels(rng.poisson(_unit(images) * photons) / photons)


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on each channel value: a share ``amount`` set to 0 or 1, half each."""
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    x = _unit(images)
    hit, salt = rng.random(x.shape) < amount, rng.random(x.shape) < 0.5
    return _pixels(np.where(hit, salt.astype(np.float64), x))


def speckle_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = (0.06, 0.1, 0.12, 0.16, 0.2)[severity - 1]
    x = _unit(images)
    return _pixels(x + x * rng.normal(scale=scale, size=x.shape))


# ---- blur ----

def _gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's ``gaussian`` over the height and width of a batch (N, H, W[, C])."""
    sigmas = (0, sigma, sigma) + (0,) * (x.ndim - 3)
    return _ndimage().gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _pixels(_gaussian(_unit(images), (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]))


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's anti-aliased disk: a 17x17 (radius <= 8) aliased disk normalised to sum 1, then smoothed by
    OpenCV's 3x3 Gaussian (weights exp(-d^2 / (2 sigma^2)), borders reflected without repeating the edge)."""
    side = 8 if radius <= 8 else math.ceil(radius)
    grid = np.arange(-side, side + 1)
    x, y = np.meshgrid(grid, grid)
    disk = (x ** 2 + y ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    taps = np.exp(-(np.arange(size) - size // 2) ** 2 / (2 * alias_blur ** 2))
    taps /= taps.sum()
    ndimage = _ndimage()
    disk = ndimage.correlate1d(disk, taps, axis=0, mode="mirror")
    return ndimage.correlate1d(disk, taps, axis=1, mode="mirror")


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    kernel = _disk(radius, alias_blur)[None, :, :, None]
    return _pixels(_ndimage().correlate(_unit(images), kernel, mode="mirror"))  # OpenCV's filter2D borders


def glass_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, move pixels locally, blur again. The reference visits the pixels from the bottom right and "swaps"
    each with a neighbour up to one pixel up or left, but its tuple swap of NumPy views copies instead: each pixel
    takes the value its neighbour had before the pass (that neighbour is visited later). That, per pass, for every
    image at once."""
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[severity - 1]
    count, height, width, _ = images.shape
    x = (_gaussian(_unit(images), sigma) * 255).astype(np.uint8)
    every = np.arange(count)[:, None, None]
    rows, cols = np.meshgrid(np.arange(delta + 1, height), np.arange(delta + 1, width), indexing="ij")
    for _ in range(iterations):
        dx, dy = rng.integers(-delta, delta, size=(2, count, *rows.shape))  # randint's: high excluded, so <= 0
        moved = x.copy()
        moved[:, delta + 1:, delta + 1:] = x[every, rows + dy, cols + dx]
        x = moved
    return _pixels(_gaussian(x / 255.0, sigma))


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's MotionBlurImage on a batch (N, H, W, C), one angle (degrees) per image: a one-sided Gaussian
    kernel of 2 * ceil(radius) + 1 taps, tap i sampling the pixel round(i * (cos, sin)) away, edges repeated."""
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    taps /= taps.sum()
    count, height, side = x.shape[:3]
    radians = np.deg2rad(angles)[:, None]
    steps = np.arange(width)[None, :]
    dx = np.ceil(steps * np.cos(radians) - 0.5).astype(int)  # (N, width)
    dy = np.ceil(steps * np.sin(radians) - 0.5).astype(int)
    every = np.arange(count)[:, None, None]
    out = np.zeros_like(x, dtype=np.float64)
    for tap in range(width):
        rows = np.clip(np.arange(height)[None, :] + dy[:, tap, None], 0, height - 1)[:, :, None]
        cols = np.clip(np.arange(side)[None, :] + dx[:, tap, None], 0, side - 1)[:, None, :]
        out += taps[tap] * x[every, rows, cols]
    return out


def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    angles = rng.uniform(-45, 45, size=len(images))
    return np.clip(np.round(_motion_blur(images.astype(np.float64), radius, sigma, angles)), 0, 255)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The centre of a batch (N, H, W, C) zoomed by ``factor`` (bilinear) and cut back to H x W."""
    side = x.shape[1]
    crop = math.ceil(side / factor)
    top = (side - crop) // 2
    zoomed = _ndimage().zoom(x[:, top:top + crop, top:top + crop], (1, factor, factor, 1), order=1)
    trim = (zoomed.shape[1] - side) // 2
    return zoomed[:, trim:trim + side, trim:trim + side]


def zoom_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    top = (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1]
    x = _unit(images).astype(np.float32)
    factors = np.arange(1, top, 0.01)
    out = np.zeros_like(x)
    for factor in factors:
        out += _clipped_zoom(x, factor)
    return _pixels((x + out) / (len(factors) + 1))


# ---- weather ----

def _plasma(count: int, size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height maps (N, size, size) in [0, 1]: each midpoint the mean of its four neighbours plus
    ``wibble`` times a uniform draw in [-wibble, wibble], ``wibble`` starting at 100 and divided by ``decay`` at
    each halving of the step, as the reference's plasma fractal."""
    maps = np.zeros((count, size, size))
    step, wibble = size, 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled(square)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = wibbled(across)
        down = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = wibbled(down)
        step //= 2
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    x = _unit(images)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    height, width = x.shape[1:3]
    x = x + amount * _plasma(len(x), 32, decay, rng)[:, :height, :width, None]
    return _pixels(x * peak / (peak + amount))


def _grey(x: np.ndarray) -> np.ndarray:
    """OpenCV's RGB to grey: 0.299 R + 0.587 G + 0.114 B, keeping a channel axis of 1."""
    return (x @ np.array([0.299, 0.587, 0.114]))[..., None]


def snow(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    mean, spread, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))[severity - 1]
    x = _unit(images)
    flakes = rng.normal(loc=mean, scale=spread, size=(*x.shape[:3], 1))
    flakes = _clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # the reference passes them through an 8-bit PNG
    angles = rng.uniform(-135, -45, size=len(x))
    flakes = np.clip(np.round(_motion_blur(flakes.astype(np.float64), radius, sigma, angles)), 0, 255) / 255
    x = keep * x + (1 - keep) * np.maximum(x, _grey(x) * 1.5 + 0.5)
    return _pixels(x + flakes + np.rot90(flakes, 2, axes=(1, 2)))


def frost(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The image dimmed and a frost texture added, with the reference's weights; the texture is generated (a
    fractal haze with needle-like crystals, pale blue) instead of the reference's photographs: NOT_COMPARABLE."""
    keep, amount = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[severity - 1]
    count, height, width, _ = images.shape
    haze = _plasma(count, 32, 1.6, rng)[:, :height, :width, None]
    seeds = (rng.random((count, height, width, 1)) < 0.06).astype(np.float64)
    needles = sum(_motion_blur(seeds, 3, 2, rng.uniform(0, 360, size=count)) for _ in range(2))
    # bright as the reference's photographs of ice are on average (about 140 of 255), pale blue
    texture = np.clip(0.35 + 0.45 * haze + 1.2 * needles, 0, 1) * np.array([0.80, 0.90, 1.0])
    return np.clip(keep * images.astype(np.float64) + amount * 255 * texture, 0, 255)


def spatter(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Water drops (severities 1-3, pale turquoise with lit edges) or mud (4-5, brown), from a thresholded
    smoothed noise layer. The drops' shading approximates the reference's OpenCV steps: NOT_COMPARABLE."""
    mean, spread, sigma, threshold, strength, mud = (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))[severity - 1]
    x = _unit(images)
    liquid = _gaussian(rng.normal(loc=mean, scale=spread, size=x.shape[:3]), sigma)
    liquid[liquid < threshold] = 0
    if mud:
        mask = _gaussian((liquid > threshold).astype(np.float64), strength)
        mask[mask < 0.8] = 0
        mask = mask[..., None]
        return _pixels(x * (1 - mask) + np.array([63, 42, 20]) / 255 * mask)
    shade = _drop_shading(liquid)
    m = liquid * shade
    m = m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12) * strength
    return _pixels(x + m[..., None] * np.array([175, 238, 238]) / 255)


def _drop_shading(liquid: np.ndarray) -> np.ndarray:
    """How lit each point of a drop is: the distance to the drop's edge (capped at 20), smoothed, equalised per
    image and embossed, as the reference shades its drops with OpenCV."""
    ndimage = _ndimage()
    layer = (liquid * 255).astype(np.uint8).astype(np.float64)
    magnitude = np.abs(ndimage.sobel(layer, axis=1)) + np.abs(ndimage.sobel(layer, axis=2))
    strong, weak = magnitude > 150, magnitude > 50
    edges = np.zeros_like(strong)
    for index in range(len(layer)):  # hysteresis: weak edges joined to strong ones, per image
        labels, _ = ndimage.label(weak[index])
        edges[index] = np.isin(labels, np.unique(labels[strong[index]])) & weak[index]
        if not edges[index].any():
            edges[index, 0, 0] = True
    distance = np.stack([ndimage.distance_transform_edt(~edge) for edge in edges])
    distance = ndimage.uniform_filter(np.minimum(distance, 20), size=(1, 3, 3), mode="mirror").astype(np.uint8)
    ranks = np.stack([_equalised(image) for image in distance]).astype(np.float64)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)[None]
    embossed = np.clip(ndimage.correlate(ranks, emboss, mode="mirror"), 0, 255)
    return ndimage.uniform_filter(embossed, size=(1, 3, 3), mode="mirror")


def _equalised(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of one uint8 image, as OpenCV's ``equalizeHist``."""
    counts = np.bincount(image.ravel(), minlength=256)
    cumulative = counts.cumsum()
    lowest = cumulative[counts > 0][0]
    if cumulative[-1] == lowest:
        return image
    table = np.round((cumulative - lowest) * 255.0 / (cumulative[-1] - lowest)).clip(0, 255).astype(np.uint8)
    return table[image]


# ---- digital ----

def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    hsv = rgb_to_hsv(_unit(images))
    hsv[..., 2] = np.clip(hsv[..., 2] + (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1], 0, 1)
    return _pixels(hsv_to_rgb(hsv))


def saturate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale, shift = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    hsv = rgb_to_hsv(_unit(images))
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + shift, 0, 1)
    return _pixels(hsv_to_rgb(hsv))


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    x = _unit(images)
    means = x.mean(axis=(1, 2), keepdims=True)
    return _pixels((x - means) * scale + means)


def _each_with_pillow(images: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(change(Image.fromarray(image))) for image in images]).astype(np.float64)


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    height, width = images.shape[1:3]
    small = (int(width * factor), int(height * factor))
    return _each_with_pillow(images, lambda image: image.resize(small, Image.BOX).resize((width, height),
                                                                                      Image.BOX))


def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = (80, 65, 58, 50, 40)[severity - 1]

    def compressed(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return Image.open(buffer).convert("RGB")
    return _each_with_pillow(images, compressed)


def elastic_transform(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine warp of three points (bilinear, borders reflected as OpenCV's warpAffine), then a smooth
    random displacement field (bilinear, reflected)."""
    side = 32  # the reference's IMSIZE: its parameters are fractions of 32
    alpha, sigma, jitter = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03))[severity - 1]
    alpha, sigma, jitter = side * alpha, side * sigma, side * jitter
    x = _unit(images)
    count, height, width, channels = x.shape
    centre, half = np.float64(min(height, width) // 2), min(height, width) // 3
    source = np.array([[centre + half, centre + half], [centre + half, centre - half], [centre - half,
                       centre - half]])
    target = source + rng.uniform(-jitter, jitter, size=(count, 3, 2)).astype(np.float32)
    # the affine map from target back to source points: where each output pixel (column, row) samples the input
    design = np.concatenate([target, np.ones((count, 3, 1))], axis=2)  # (N, 3, 3)
    inverse = np.linalg.solve(design, np.broadcast_to(source, (count, 3, 2)))  # (N, 3, 2)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    points = np.stack([cols, rows, np.ones_like(rows)], axis=-1).reshape(-1, 3).astype(np.float64)
    sampled = points @ inverse  # (N, H*W, 2): column, row
    warped = _sample(x, sampled[..., 1].reshape(count, height, width), sampled[..., 0].reshape(count, height, width),
                     "mirror")
    shifts = [_gaussian(rng.uniform(-1, 1, size=(count, height, width)), sigma, "reflect", 3.0) * alpha
              if sigma > 0 else np.zeros((count, height, width)) for _ in range(2)]
    return _pixels(_sample(warped, rows[None] + shifts[1], cols[None] + shifts[0], "reflect"))


def _sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Each image of (N, H, W, C) sampled bilinearly at its own (rows, cols) (N, H, W), every channel."""
    count, height, width, channels = x.shape
    coordinates = np.stack(np.broadcast_arrays(
        np.arange(count)[:, None, None, None], rows[..., None], cols[..., None],
        np.arange(channels)[None, None, None, :]))
    return _ndimage().map_coordinates(x, coordinates.reshape(4, -1), order=1, mode=mode).reshape(x.shape)


# name -> (family, function), in CIFAR-10-C's order: its 15 corruptions, then its 4 extra ones
CORRUPTIONS: dict[str, tuple[str, Corruption]] = {
    "gaussian_noise": ("noise", gaussian_noise), "shot_noise": ("noise", shot_noise),
    "impulse_noise": ("noise", impulse_noise), "defocus_blur": ("blur", defocus_blur),
    "glass_blur": ("blur", glass_blur), "motion_blur": ("blur", motion_blur), "zoom_blur": ("blur", zoom_blur),
    "snow": ("weather", snow), "frost": ("weather", frost), "fog": ("weather", fog),
    "brightness": ("digital", brightness), "contrast": ("digital", contrast),
    "elastic_transform": ("digital", elastic_transform), "pixelate": ("digital", pixelate),
    "jpeg_compression": ("digital", jpeg_compression),
    "speckle_noise": ("noise", speckle_noise), "gaussian_blur": ("blur", gaussian_blur),
    "spatter": ("weather", spatter), "saturate": ("digital", saturate),
}
BENCHMARK = tuple(CORRUPTIONS)[:15]  # the 15 that CIFAR-10-C's mean corruption error averages
NOT_COMPARABLE = ("frost", "spatter")  # generated differently from the reference (see the module's text)


def check_corruptions(names: list[str]) -> list[str]:
    """``all`` or corruption names: the names, or a one-line refusal that lists the valid ones."""
    if names == ["all"] or not names:
        return list(CORRUPTIONS)
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise ResnetCifarError(f"unknown corruption {', '.join(unknown)}: choose all or any of "
                               f"{', '.join(CORRUPTIONS)}")
    return list(dict.fromkeys(names))


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """uint8 images (N, H, W, 3) with corruption ``name`` at ``severity`` (1-5), the same for the same seed."""
    if severity not in SEVERITIES:
        raise ResnetCifarError(f"severity {severity} is not one of 1-5")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ResnetCifarError("corruptions take uint8 RGB images (N, H, W, 3)")
    _, function = CORRUPTIONS[check_corruptions([name])[0]]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name), severity])
    return function(images, severity, rng).astype(np.uint8)  # truncated, as the reference's np.uint8
