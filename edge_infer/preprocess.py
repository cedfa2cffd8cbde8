"""Image loading and preprocessing, shared by training and inference.

Training (``train``) and every runtime call these same functions, so what the model saw while it
learned is exactly what it sees on the device. The pipeline is:

1. :func:`load_grayscale`: any supported file → 2-D ``uint8`` array at its own resolution.
2. :func:`pad_to_square`: centre the image on a black square (no anatomy is cropped, no aspect
   distortion); :class:`SquarePadding` records where the original sits, so a heatmap maps back.
3. :func:`resize_square`: bilinear (antialiased) resize to the model's input size.
4. :func:`to_model_input`: ``uint8`` → ``float32`` in the manifest's value range, grey replicated
   to the model's channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputImageError

MIN_SIDE = 32
"""Smallest side, in pixels, that can still hold a knee joint."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw pixels become model input; stored in every manifest.

    Attributes:
        size: Square input side in pixels.
        channels: Channels the model takes (the grey image is replicated).
        value_range: ``(low, high)`` that pixel values 0 and 255 map to.
    """

    size: int
    channels: int = 3
    value_range: tuple[float, float] = (-1.0, 1.0)

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "channels": self.channels,
            "value_range": list(self.value_range),
            "color": "grayscale, replicated to every channel",
            "resize": "pad to square with black, centred; then bilinear (antialiased) resize",
            "layout": "NHWC",
            "dtype": "float32",
        }

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        lo, hi = d.get("value_range", (-1.0, 1.0))
        return cls(size=int(d["size"]), channels=int(d.get("channels", 3)), value_range=(float(lo), float(hi)))


@dataclass(frozen=True)
class SquarePadding:
    """Where an ``height × width`` image sits inside its padded square of side ``side``."""

    height: int
    width: int
    top: int
    left: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)


def load_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2-D ``uint8`` grayscale array, honouring EXIF orientation.

    Args:
        path: PNG (8- or 16-bit, grey, RGB, RGBA, palette), JPEG, TIFF or BMP file.

    Returns:
        ``(height, width)`` ``uint8`` array.

    Raises:
        InputImageError: naming the file, when it is missing, a directory, empty, not an
            image, truncated, too large for Pillow's decompression-bomb guard, or too small.
    """
    p = Path(path)
    if not p.exists():
        raise InputImageError(p, "no such file")
    if p.is_dir():
        raise InputImageError(p, "is a directory, not an image file")
    if p.stat().st_size == 0:
        raise InputImageError(p, "empty file")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            gray = pil_to_gray(im)
    except Image.DecompressionBombError as e:
        raise InputImageError(p, f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise InputImageError(p, "not an image Pillow can read (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputImageError(p, f"unreadable or truncated image ({e})") from None
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        raise InputImageError(p, f"image too small ({w}×{h} px); a knee needs at least {MIN_SIDE} px per side")
    return gray


def pil_to_gray(im: Image.Image) -> np.ndarray:
    """Any Pillow image as 2-D ``uint8`` grey; transparency is composited onto black."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 4095.0 if arr.max() <= 4095 and arr.max() > 255 else (255.0 if arr.max() <= 255 else 65535.0)
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.rint(scaled).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, rgba)
    return np.asarray(im.convert("L"), dtype=np.uint8).copy()


def pad_to_square(gray: np.ndarray) -> tuple[np.ndarray, SquarePadding]:
    """Centre a 2-D image on a black square; returns the square and where the image sits."""
    h, w = gray.shape
    side = max(h, w)
    pad = SquarePadding(height=h, width=w, top=(side - h) // 2, left=(side - w) // 2)
    if h == w:
        return gray, pad
    out = np.zeros((side, side), dtype=gray.dtype)
    out[pad.top : pad.top + h, pad.left : pad.left + w] = gray
    return out, pad


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resize of a square ``uint8`` image to ``size × size``."""
    if square.shape == (size, size):
        return square
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))


def prepare_gray(gray: np.ndarray, size: int) -> tuple[np.ndarray, SquarePadding]:
    """Pad and resize a grayscale image to the model's square input size (still ``uint8``)."""
    square, pad = pad_to_square(gray)
    return resize_square(square, size), pad


def to_model_input(gray: np.ndarray, spec: PreprocessSpec, channels: int | None = None) -> np.ndarray:
    """Map ``uint8`` image(s) of the input size to the model's ``float32`` tensor.

    Args:
        gray: ``(size, size)`` or ``(n, size, size)`` ``uint8`` array from :func:`prepare_gray`.
        spec: The manifest's preprocessing.
        channels: Channels to produce; defaults to ``spec.channels``. Training passes 1 to keep
            its in-memory cache small and replicates the channel later.

    Returns:
        ``(n, size, size, channels)`` ``float32`` array (``n = 1`` for a single image).
    """
    arr = np.asarray(gray)
    if arr.ndim == 2:
        arr = arr[None]
    lo, hi = spec.value_range
    x = arr.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
    return np.repeat(x[..., None], channels or spec.channels, axis=-1)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File endings picked up when a folder is given; a file named explicitly is always tried."""
