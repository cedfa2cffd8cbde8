"""Small report figures drawn with Pillow alone, so evaluation and benchmarks run on the device's
runtime-only install (no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (20, 20, 20), (150, 150, 150), (225, 225, 225)
BLUE, RED = (31, 119, 180), (214, 39, 40)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int = 14, fill=BLACK, anchor: str = "la") -> None:
    draw.text(xy, text, fill=fill, font=_font(size), anchor=anchor)


def _blue(fraction: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1)."""
    f = float(np.clip(fraction, 0.0, 1.0))
    start, end = np.array([247, 251, 255]), np.array([8, 48, 107])
    return tuple(int(v) for v in start + (end - start) * f)


def confusion_matrix_png(
    cm: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str, subtitle: str = ""
) -> Path:
    """Counts with row-normalised shading (each row is one true class: its recall is on the diagonal)."""
    cm = np.asarray(cm, np.int64)
    n = len(classes)
    cell, left, top = 72, 90, 96
    width, height = left + n * cell + 30, top + n * cell + 40
    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)
    _text(d, (width // 2, 10), title, 15, anchor="ma")
    _text(d, (width // 2, 30), subtitle, 12, GREY, anchor="ma")
    _text(d, (left + n * cell // 2, 56), "predicted", 13, GREY, anchor="ma")
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    for i in range(n):
        _text(d, (left - 8, top + i * cell + cell // 2), classes[i], 13, anchor="rm")
        _text(d, (left + i * cell + cell // 2, top - 6), classes[i], 13, anchor="md")
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            d.rectangle([x, y, x + cell, y + cell], fill=_blue(share[i, j]), outline=WHITE)
            ink = WHITE if share[i, j] > 0.5 else BLACK
            _text(d, (x + cell // 2, y + cell // 2 - 8), str(cm[i, j]), 15, ink, anchor="mm")
            _text(d, (x + cell // 2, y + cell // 2 + 12), f"{share[i, j]:.0%}", 11, ink, anchor="mm")
    _text(d, (14, top + n * cell // 2), "true", 13, GREY, anchor="lm")
    _text(d, (left, top + n * cell + 14), "shade and % : share of the true class's row", 11, GREY)
    return _save(img, path)


_SIZE, _LEFT, _TOP = 360, 60, 70
"""The unit-square plots' side, left margin and top margin, in pixels."""


def _unit_square(title: str, subtitle: str):
    """A titled canvas with a [0, 1]² grid; returns it, its drawer and the data → pixel map."""
    img = Image.new("RGB", (_LEFT + _SIZE + 40, _TOP + _SIZE + 56), WHITE)
    d = ImageDraw.Draw(img)

    def xy(fx: float, ty: float) -> tuple[float, float]:
        return _LEFT + fx * _SIZE, _TOP + (1.0 - ty) * _SIZE

    _text(d, (img.width // 2, 10), title, 15, anchor="ma")
    _text(d, (img.width // 2, 30), subtitle, 12, GREY, anchor="ma")
    for t in np.linspace(0, 1, 6):
        d.line([xy(t, 0), xy(t, 1)], fill=LIGHT)
        d.line([xy(0, t), xy(1, t)], fill=LIGHT)
        _text(d, (xy(t, 0)[0], _TOP + _SIZE + 6), f"{t:.1f}", 11, GREY, anchor="ma")
        _text(d, (_LEFT - 6, xy(0, t)[1]), f"{t:.1f}", 11, GREY, anchor="rm")
    return img, d, xy


def _labels(d: ImageDraw.ImageDraw, xy, x_label: str, y_label: str) -> None:
    _text(d, (xy(0.5, 0)[0], _TOP + _SIZE + 26), x_label, 12, anchor="ma")
    _text(d, (6, _TOP - 18), y_label, 12)


def roc_png(
    fpr: np.ndarray,
    tpr: np.ndarray,
    auc: float,
    operating: tuple[float, float] | None,
    path: str | Path,
    title: str,
    subtitle: str = "",
    operating_label: str = "",
) -> Path:
    """The ROC curve with the chance diagonal and, when given, the operating point.

    Text is ASCII: Pillow's built-in font has no ≥ or − glyphs."""
    img, d, xy = _unit_square(title, subtitle)
    d.rectangle([xy(0, 1), xy(1, 0)], outline=GREY)
    _dashed(d, xy(0, 0), xy(1, 1), GREY)
    d.line([xy(f, t) for f, t in zip(fpr, tpr, strict=True)], fill=BLUE, width=3, joint="curve")
    if operating is not None:
        ox, oy = xy(*operating)
        d.ellipse([ox - 6, oy - 6, ox + 6, oy + 6], fill=RED)
        _text(d, (ox + 10, oy + 4), operating_label, 12, RED, anchor="la")
    _text(d, xy(0.97, 0.05), f"AUC {auc:.3f}", 15, BLUE, anchor="rs")
    _labels(d, xy, "1 - specificity (false-positive rate)", "sensitivity")
    return _save(img, path)


def reliability_png(rows: list[dict], ece: float, path: str | Path, title: str, subtitle: str = "") -> Path:
    """The reliability diagram: per confidence bin, accuracy against mean confidence (a bar each,
    its width the bin, shaded by how many knees fell in it), with the diagonal of perfect calibration."""
    img, d, xy = _unit_square(title, subtitle)
    most = max((r["n"] for r in rows), default=1) or 1
    for r in rows:
        if r["n"]:
            d.rectangle([xy(r["low"], r["accuracy"]), xy(r["high"], 0)], fill=_blue(r["n"] / most), outline=BLUE)
            cx, cy = xy(r["confidence"], r["accuracy"])
            d.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=RED)
    d.rectangle([xy(0, 1), xy(1, 0)], outline=GREY)
    _dashed(d, xy(0, 0), xy(1, 1), GREY)
    _text(d, xy(0.03, 0.95), f"ECE {ece:.3f}", 15, BLUE, anchor="la")
    _labels(d, xy, "confidence (top-class probability)", "accuracy")
    return _save(img, path)


def scatter_png(
    points: Sequence[tuple[float, float, str]], path: str | Path, title: str, x_label: str, y_label: str
) -> Path:
    """Labelled points on linear axes from zero (e.g. latency against file size)."""
    w, h, left, top = 520, 340, 70, 60
    img = Image.new("RGB", (left + w + 170, top + h + 56), WHITE)
    d = ImageDraw.Draw(img)
    x_max = _nice(max([p[0] for p in points], default=1.0))
    y_max = _nice(max([p[1] for p in points], default=1.0))

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + x / x_max * w, top + (1.0 - y / y_max) * h

    _text(d, (left + w // 2, 12), title, 15, anchor="ma")
    for t in np.linspace(0, 1, 6):
        d.line([xy(t * x_max, 0), xy(t * x_max, y_max)], fill=LIGHT)
        d.line([xy(0, t * y_max), xy(x_max, t * y_max)], fill=LIGHT)
        _text(d, (xy(t * x_max, 0)[0], top + h + 6), f"{t * x_max:g}", 11, GREY, anchor="ma")
        _text(d, (left - 6, xy(0, t * y_max)[1]), f"{t * y_max:g}", 11, GREY, anchor="rm")
    d.rectangle([xy(0, y_max), xy(x_max, 0)], outline=GREY)
    placed: list[tuple[float, float]] = []
    for x, y, label in sorted(points, key=lambda p: (p[0], p[1])):
        px, py = xy(x, y)
        d.ellipse([px - 5, py - 5, px + 5, py + 5], fill=BLUE)
        ty = py - 8
        while any(abs(ty - oy) < 14 and abs(px - ox) < 120 for ox, oy in placed):
            ty -= 14  # stack labels of nearby points upwards instead of overprinting them
        placed.append((px, ty))
        _text(d, (px + 8, ty), label, 11, anchor="la")
    _text(d, (left + w // 2, top + h + 26), x_label, 12, anchor="ma")
    _text(d, (6, top - 20), y_label, 12)
    return _save(img, path)


def _nice(value: float) -> float:
    """The next 1, 2 or 5 × 10^k at or above ``value`` (an axis maximum)."""
    if value <= 0:
        return 1.0
    exp = 10 ** np.floor(np.log10(value))
    return float(next(m * exp for m in (1, 2, 5, 10) if value <= m * exp))


def _dashed(d: ImageDraw.ImageDraw, a, b, fill, dash: float = 6) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = int(np.hypot(*(b - a)) // dash)
    for k in range(0, n, 2):
        d.line([tuple(a + (b - a) * k / n), tuple(a + (b - a) * (k + 1) / n)], fill=fill)


def _save(img: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    img.save(path)
    return path
