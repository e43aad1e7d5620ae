"""Decode any image a user has (PNG, JPEG, GIF, ...; grayscale, RGBA, palette, 16-bit) into a uint8 RGB tensor."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ResnetCifarError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class ImageTooLarge(ResnetCifarError):
    """An image with more pixels than may be decoded safely."""


def decode_image(source: bytes | Path, size: tuple[int, int], name: str | None = None,
                 max_pixels: int | None = None) -> torch.Tensor:
    """Decode ``source`` (file path or raw bytes), resize to ``size`` (H, W): uint8 tensor (3, H, W). An image of
    more than ``max_pixels`` pixels (default: Pillow's decompression-bomb limit) is refused before it is decoded."""
    label = name or str(source if isinstance(source, Path) else "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:  # only the header read yet
                    raise ImageTooLarge(f"{label} has {image.width} x {image.height} pixels, more than the "
                                        f"{max_pixels:,} allowed")
                image.seek(0)  # first frame of an animation
                rgb = _to_rgb(ImageOps.exif_transpose(image))
                resized = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"{label} is too large to decode safely ({error})") from None
    except UnidentifiedImageError:
        raise ResnetCifarError(f"{label} is not an image Pillow can read") from None
    except (PermissionError, IsADirectoryError) as error:  # the file system's answer, not the image's fault
        raise ResnetCifarError(f"cannot read {label} ({error.strerror})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ResnetCifarError(f"{label} cannot be decoded ({error}); is the file complete?") from None
    return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def image_pixels(data: bytes) -> int | None:
    """The pixel count an encoded image declares in its header (nothing is decoded), or None if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.width * image.height
    except Exception:  # noqa: BLE001  Pillow raises many types for damaged headers; decoding names the problem
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.width == 0 or image.height == 0:
        raise ValueError("the image has no pixels")
    if image.mode == "F":
        # 32-bit float (TIFF): scaled to 0..1 or 0..255 by convention; convert() would clip 0..1 to black.
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        image = _gray_8bit(pixels, 1.0 if pixels.max() <= 1.0 else 255.0 if pixels.max() <= 255.0 else pixels.max())
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: rescale to 8 bits instead of clipping everything above 255 to white.
        pixels = np.asarray(image, dtype=np.float64)
        image = _gray_8bit(pixels, 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _gray_8bit(pixels: np.ndarray, peak: float) -> Image.Image:
    """A grayscale image of ``pixels`` scaled so that ``peak`` becomes 255."""
    return Image.fromarray(np.clip(pixels / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
