"""The ``percentile`` intensity stretch, on the finest grey levels a file holds.

A v2 model's contract (:attr:`edge_infer.preprocess.PreprocessSpec.intensity`) maps an image's own
low and high percentiles (0.5 and 99.5) to 0 and 255. Done on an 8-bit image, that stretch cannot
restore what quantising to 8 bits lost: a 16-bit PNG whose data occupy 30000–34000 of 65535 is
about sixteen grey levels once scaled to 8 bits. So decoding keeps the file's own levels
(:attr:`edge_infer.decode.DecodedImage.levels`: 16- and 32-bit integers, floats, a DICOM's modality
values when it has no window), and the stretch runs on those, quantising to 8 bits once, at the end.

Percentile ``p`` of ``n`` pixels is the lowest level at or below which ``n·p/100`` pixels lie,
the same rule at every bit depth: an 8-bit knee stored as ``level × 257`` or ``30000 + 16 × level``
gets exactly the 8-bit knee's result. Integer levels are counted in a histogram (one pass);
float levels are selected with a partial sort.

Each function also returns the 256-bin histogram of the 8-bit result, found on the way (from the
lookup table for integer levels), so the input gate's image checks need no pass of their own.
"""

from __future__ import annotations

import math

import numpy as np

GREY_LEVELS = 256
MAX_HISTOGRAM_LEVELS = 1 << 20
"""Widest range of integer levels counted in a histogram; wider ones (32-bit data) are sorted."""


def grey_histogram(gray: np.ndarray) -> np.ndarray:
    """Pixel counts of each grey level of a ``uint8`` image (256 bins)."""
    return np.bincount(gray.ravel(), minlength=GREY_LEVELS)


def percentile_stretch(
    gray: np.ndarray, percentiles: tuple[float, float], levels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stretch the image's ``percentiles`` to 0 and 255, linearly, clipped, rounded to ``uint8``.

    Args:
        gray: The decoded 2-D ``uint8`` image.
        percentiles: ``(low, high)``, in percent.
        levels: The same pixels at full precision (same shape), or ``None`` to stretch ``gray``.

    Returns:
        The stretched ``uint8`` image and its 256-bin histogram. An image whose two percentiles
        coincide (blank, or nearly) is returned as ``gray``, unstretched.
    """
    if levels is None:
        stretched, counts = _stretch_integers(gray, 0, percentiles)
    elif levels.dtype.kind in "ui" and int(levels.max()) - min(int(levels.min()), 0) < MAX_HISTOGRAM_LEVELS:
        stretched, counts = _stretch_integers(levels, min(int(levels.min()), 0), percentiles)
    else:
        stretched, counts = _stretch_floats(levels, percentiles)
    if stretched is None:
        return gray, counts if levels is None else grey_histogram(gray)
    return stretched, counts


def _stretch_integers(
    levels: np.ndarray, offset: int, percentiles: tuple[float, float]
) -> tuple[np.ndarray | None, np.ndarray]:
    """Integer levels (``levels - offset`` non-negative): percentiles from a histogram, then a
    lookup table; the result's histogram is the table applied to the counts."""
    index = levels if offset == 0 else (levels.astype(np.int64) - offset)
    counts = np.bincount(index.ravel(), minlength=GREY_LEVELS)
    cdf = np.cumsum(counts)
    n = cdf[-1]
    # the k-th smallest pixel with k = max(n·p/100, 1): percentile 0 is the darkest pixel, as below
    lo = int(np.searchsorted(cdf, max(n * percentiles[0] / 100.0, 1), side="left"))
    hi = int(np.searchsorted(cdf, max(n * percentiles[1] / 100.0, 1), side="left"))
    if hi <= lo:
        return None, counts
    grid = np.arange(counts.size, dtype=np.float64)
    lut = np.clip(np.rint((grid - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    stretched_counts = np.bincount(lut, weights=counts, minlength=GREY_LEVELS).astype(np.int64)
    return lut[index], stretched_counts


def _stretch_floats(levels: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray | None, None]:
    """Float (or very wide integer) levels: the percentiles by partial sort, then the linear map."""
    values = levels if levels.dtype.kind == "f" else np.asarray(levels, np.float64)  # float32 stays float32
    flat = values.ravel()
    if not np.isfinite(flat).all():
        return None, None
    # the k-th smallest (1-based) with k = ceil(n·p/100): the histogram rule's level
    ranks = [max(math.ceil(flat.size * p / 100.0) - 1, 0) for p in percentiles]
    lo, hi = np.partition(flat, ranks)[ranks]
    if not hi > lo:
        return None, None
    scaled = values - lo  # one temporary of the levels' size, worked on in place
    scaled *= values.dtype.type(255.0 / (hi - lo))
    np.rint(scaled, out=scaled)
    stretched = np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)
    return stretched, grey_histogram(stretched)
