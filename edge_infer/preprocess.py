"""Image loading and preprocessing, shared by training and inference.

Training (``kneeoa_train``) and every runtime call these same functions, so what the model saw while it
learned is exactly what it sees on the device. The pipeline is:

1. :func:`edge_infer.decode.decode_image`: any supported file (DICOM included) → 2-D ``uint8``
   array at its own resolution, and the file's own levels when finer than 8 bits.
2. :func:`standardize_intensity`: the manifest's intensity contract (v2 models: the image's own
   0.5–99.5 percentile range stretched to 0..255, on the file's full-precision levels), so a
   knee gets the same input whether it was stored as an 8-bit PNG, a 16-bit PNG or a 12-bit
   DICOM, with or without a window.
3. :func:`pad_to_square`: centre the image on a black square (no anatomy is cropped, no aspect
   distortion); :class:`SquarePadding` records where the original sits, so a heatmap maps back.
4. :func:`resize_square`: bilinear (antialiased) resize to the model's input size.
5. :func:`to_model_input`: ``uint8`` → ``float32`` in the manifest's value range, grey replicated
   to the model's channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .decode import decode_image
from .intensity import percentile_stretch

INTENSITY_MODES = ("stored", "percentile")
"""``stored``: grey levels used as decoded (models before v2). ``percentile``: the image's own
low/high percentiles are stretched to 0 and 255 before anything else."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw pixels become model input; stored in every manifest.

    Attributes:
        size: Square input side in pixels.
        channels: Channels the model takes (the grey image is replicated).
        value_range: ``(low, high)`` that pixel values 0 and 255 map to.
        intensity: One of :data:`INTENSITY_MODES`.
        percentiles: The ``(low, high)`` percentiles that ``percentile`` maps to 0 and 255.
    """

    size: int
    channels: int = 3
    value_range: tuple[float, float] = (-1.0, 1.0)
    intensity: str = "stored"
    percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITY_MODES:
            raise ValueError(f"intensity must be one of {', '.join(INTENSITY_MODES)}, got {self.intensity!r}")
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"intensity percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")

    def intensity_dict(self) -> dict:
        if self.intensity == "stored":
            return {"method": "stored"}
        lo, hi = self.percentiles
        return {
            "method": "percentile",
            "low": lo,
            "high": hi,
            "description": f"the image's {lo:g} and {hi:g} percentiles stretched to 0 and 255, before padding",
        }

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "intensity": self.intensity_dict(),
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
        intensity = d.get("intensity") or {"method": "stored"}
        method = intensity.get("method", "stored")
        percentiles = (float(intensity.get("low", 0.5)), float(intensity.get("high", 99.5)))
        return cls(
            size=int(d["size"]),
            channels=int(d.get("channels", 3)),
            value_range=(float(lo), float(hi)),
            intensity=method,
            percentiles=percentiles,
        )


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


def standardize_intensity(gray: np.ndarray, spec: PreprocessSpec, levels: np.ndarray | None = None) -> np.ndarray:
    """Apply the manifest's intensity contract to a 2-D ``uint8`` image (see
    :func:`standardize_with_histogram`)."""
    return standardize_with_histogram(gray, spec, levels)[0]


def standardize_with_histogram(
    gray: np.ndarray, spec: PreprocessSpec, levels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the manifest's intensity contract; also return the result's grey-level histogram
    when the contract computed it on the way.

    ``stored``: ``gray`` as it is, and no histogram. ``percentile``: level ``lo`` (the lowest
    level at or below which ``low`` % of the pixels lie) maps to 0 and ``hi`` to 255, linearly,
    clipped (:func:`edge_infer.intensity.percentile_stretch`). A constant image is returned as
    it is.

    Args:
        gray: The decoded 2-D ``uint8`` image.
        spec: The manifest's preprocessing.
        levels: The same pixels at the file's full precision
            (:attr:`edge_infer.decode.DecodedImage.levels`); ``percentile`` stretches these
            instead of ``gray``, so nothing is lost to 8-bit quantisation first. ``stored``
            ignores them.

    Returns:
        The ``uint8`` image the rest of the pipeline takes, and its 256-bin histogram or ``None``.
    """
    if spec.intensity == "stored":
        return gray, None
    return percentile_stretch(gray, spec.percentiles, levels)


def pad_to_square(gray: np.ndarray) -> tuple[np.ndarray, SquarePadding]:
    """Centre a 2-D image on a black square; returns the square and where the image sits."""
    h, w = gray.shape
    side = max(h, w)
    pad = square_padding(h, w)
    if h == w:
        return gray, pad
    out = np.zeros((side, side), dtype=gray.dtype)
    out[pad.top : pad.top + h, pad.left : pad.left + w] = gray
    return out, pad


def square_padding(h: int, w: int) -> SquarePadding:
    """Where an ``h × w`` image sits when centred on a black square."""
    side = max(h, w)
    return SquarePadding(height=h, width=w, top=(side - h) // 2, left=(side - w) // 2)


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resize of a square ``uint8`` image to ``size × size``."""
    if square.shape == (size, size):
        return square
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))


def prepare_gray(
    gray: np.ndarray, size: int | PreprocessSpec, levels: np.ndarray | None = None
) -> tuple[np.ndarray, SquarePadding]:
    """Standardise intensity (when given a spec; from ``levels`` when the decode kept them), pad
    and resize a grayscale image to the model's square input size (still ``uint8``)."""
    if isinstance(size, PreprocessSpec):
        gray, size = standardize_intensity(gray, size, levels), size.size
    square, pad = pad_to_square(gray)
    return resize_square(square, size), pad


def prepare_file(path, size: int | PreprocessSpec) -> tuple[np.ndarray, SquarePadding]:
    """Read an image file and make it the model's square ``uint8`` input, as the device does: the
    intensity contract on the file's finest levels (:func:`edge_infer.decode.decode_image`), then
    pad and resize. Training, calibration, the gate's fit and the benchmarks all read files this way.

    Raises:
        InputImageError: the file is not a usable image.
    """
    decoded = decode_image(path)
    if isinstance(size, PreprocessSpec):
        return prepare_gray(standardize_intensity(decoded.gray, size, decoded.levels), size.size)
    return prepare_gray(decoded.gray, size)


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
