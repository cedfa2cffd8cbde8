"""Grad-CAM overlays that keep the bone readable: the one rendering behind ``edge-infer
--heatmap-dir`` and the web app (``kneeoa app``).

Where the map is weak the radiograph shows unchanged: a colour's weight is zero up to
:data:`DEFAULT_FLOOR` of the map's peak, then rises smoothly (smoothstep) to the chosen opacity
at the peak, so only the regions that drove the grade are tinted and even there the grey detail
shows through. The colours run through viridis (perceptually uniform, readable by colour-blind
readers and in greyscale print) from the floor to the peak, and :func:`legend` draws that scale
beside the image. The map is min–max scaled per image (:func:`edge_infer.gradcam.gradcam_from_features`),
so the scale is relative: "high" is this image's strongest evidence, not an absolute quantity.
"""

from __future__ import annotations

import functools

import numpy as np

DEFAULT_OPACITY = 0.5
"""Colour weight at the map's peak."""
DEFAULT_FLOOR = 0.3
"""Share of the map's peak below which the radiograph is left untouched."""

# Viridis at nine evenly spaced stops.
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float32,
)
_BACKGROUND = 0
_TEXT = 235


def colorize(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] values to viridis RGB (float32, 0..255)."""
    pos = np.clip(values, 0.0, 1.0) * (len(_VIRIDIS) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(_VIRIDIS) - 1)
    t = (pos - lo)[..., None]
    return _VIRIDIS[lo] * (1 - t) + _VIRIDIS[hi] * t


@functools.lru_cache(maxsize=32)
def level_tables(opacity: float = DEFAULT_OPACITY, floor: float = DEFAULT_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Colour weight ``(256,)`` and colour ``(256, 3)`` for each of the 256 levels a map is
    quantised to (level ``i`` is map value ``i / 255``).

    Raises:
        ValueError: ``opacity`` outside [0, 1] or ``floor`` outside [0, 1).
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    t = np.clip((np.linspace(0.0, 1.0, 256) - floor) / (1.0 - floor), 0.0, 1.0)
    alpha = (opacity * t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no visible edge at the floor
    colors = colorize(t.astype(np.float32)).astype(np.float32)
    alpha.setflags(write=False)
    colors.setflags(write=False)
    return alpha, colors


def overlay(
    gray: np.ndarray, cam: np.ndarray, opacity: float = DEFAULT_OPACITY, floor: float = DEFAULT_FLOOR
) -> np.ndarray:
    """The X-ray in grey, tinted only where the map is strong.

    Args:
        gray: ``(H, W)`` ``uint8`` image.
        cam: ``(H, W)`` map in [0, 1], same size.
        opacity: Colour weight at the map's peak (the app's slider; 0 shows the plain image).
        floor: Map value up to which the image is left exactly as it is.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB image, pixel for pixel aligned with ``gray``.

    Raises:
        ValueError: ``opacity`` or ``floor`` out of range, or the shapes differ.

    The map is quantised to 256 levels and blended through per-level tables: about 8× faster than
    blending in float per pixel, differing from it by at most 1 grey level.
    """
    if gray.shape != cam.shape:
        raise ValueError(f"image and map differ in shape: {gray.shape} and {cam.shape}")
    alpha, colors = level_tables(float(opacity), float(floor))
    level = np.rint(np.clip(cam, 0.0, 1.0) * 255.0).astype(np.uint8)
    keep = (1.0 - alpha)[level][..., None]
    tint = (colors * alpha[:, None])[level]
    return (gray[..., None] * keep + tint + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=32)
def legend(height: int, opacity: float = DEFAULT_OPACITY, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """A vertical colour scale, ``(height, width, 3)`` ``uint8``, to stand beside an overlay.

    The bar shows each level as :func:`overlay` draws it over mid-grey bone, the peak at the top;
    "high" marks the peak and "low" the floor, below which the bar is plain grey (untouched).
    """
    from PIL import Image, ImageDraw, ImageFont

    size = int(np.clip(height / 16, 8, 32))
    font = ImageFont.load_default(size=size)
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(draw_probe.textbbox((0, 0), word, font=font)[2] for word in ("high", "low"))
    margin, bar_w = max(2, size // 3), max(6, size)
    width = margin + bar_w + margin + text_w + margin
    top, bottom = size // 2 + margin, height - size // 2 - margin
    strip = np.full((height, width, 3), _BACKGROUND, np.uint8)
    if bottom - top >= 4:
        values = np.linspace(1.0, 0.0, bottom - top, dtype=np.float32)[:, None].repeat(bar_w, 1)
        strip[top:bottom, margin : margin + bar_w] = overlay(
            np.full(values.shape, 128, np.uint8), values, opacity, floor
        )
    im = Image.fromarray(strip)
    draw = ImageDraw.Draw(im)
    x = margin + bar_w + margin
    floor_y = top + (1.0 - floor) * (bottom - top)
    for word, y in (("high", top), ("low", floor_y)):
        draw.text((x, y), word, fill=(_TEXT,) * 3, font=font, anchor="lm")
        draw.line([(margin + bar_w, y), (x - 1, y)], fill=(_TEXT,) * 3)
    out = np.asarray(im).copy()
    out.setflags(write=False)
    return out


def heatmap_figure(
    gray: np.ndarray, cam: np.ndarray, opacity: float = DEFAULT_OPACITY, floor: float = DEFAULT_FLOOR
) -> np.ndarray:
    """:func:`overlay` with its :func:`legend` to the right: what ``edge-infer --heatmap-dir``
    writes and the web app shows. The first ``W`` columns are the overlay, aligned with the input."""
    return np.concatenate([overlay(gray, cam, opacity, floor), legend(gray.shape[0], float(opacity), float(floor))], 1)
