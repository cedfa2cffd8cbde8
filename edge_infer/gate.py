"""The input gate: refuse to grade what is not a single-knee PA crop like those the model learned.

A screening aid must not give a confident answer to an input it was not made for. Every image is
checked before a grade is reported, in numpy, from what one inference already gives:

1. **Image checks**, before inference, on the decoded grey image: a blank or nearly uniform image
   (fewer than :data:`MIN_SPREAD` distinct grey levels between its 0.5 and 99.5 percentiles), an aspect ratio
   beyond :data:`MAX_ASPECT` (a bilateral film or a whole cassette, not one knee), and more than
   :data:`MAX_EMPTY` of the image empty black (a knee small in a large field).
2. **Orientation**: a softmax regression on the pooled feature map (top half and bottom half
   pooled separately, so the vertical layout counts) tells a knee as it should be from the same
   knee inverted (a negative image), rotated by 90° or upside down. It is fitted on training
   knees and those three transforms of them.
3. **Polarity**: a logistic regression on the 16×16 thumbnail of the model input tells a
   radiograph from its negative, from the pixels alone.
4. **Distance**: the Mahalanobis distance of the pooled features to class-conditional Gaussians
   with a shared covariance (Lee et al., NeurIPS 2018), fitted on training knees. The covariance
   is kept as its leading eigenvectors plus one variance for the rest (probabilistic PCA), which
   refused as much as the full matrix at a sixth of the file size. Anything far
   from every grade is refused: other modalities, photographs, noise, whole films.

Checks 2–4 are fitted per model by ``kneeoa convert`` (:mod:`kneeoa_convert.gate`) and their
thresholds set on validation knees to a stated false-refusal rate, per shipped format; the fitted
arrays ship as ``gate.npz`` beside the model, checksummed in the manifest like every artifact.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

GATE_FILE = "gate.npz"
MIN_SPREAD = 16
"""Distinct grey levels between an image's 0.5th and 99.5th percentiles below which it is refused
as blank. Counted, not spanned: a v2 model's intensity contract stretches a nearly uniform image
to the full range, but cannot make new levels. Every kneeKL224 knee holds more than 60."""
MIN_STORED_SPAN = 4
"""For a file with finer levels than 8 bits (16-bit, DICOM): grey levels of 255 that its 8-bit
decode must span between the 0.5th and 99.5th percentiles. Below that it is flat as stored, however
many levels its noise makes when stretched; a knee in a narrow 16-bit band (30000-34000) spans 16."""
MAX_EMPTY = 0.5
"""Share of near-black pixels (grey level 8 or less) above which an image is refused as a knee
small in a large field (an uncropped film). kneeKL224 knees: at most 0.22 (train and val)."""
MAX_ASPECT = 1.6
"""Longest side over shortest side above which an image is refused as not one knee. Training
crops are square; a bilateral standing film is about 2:1."""
THUMBNAIL = 16
"""Side of the thumbnail the polarity check reads."""
ORIENTATIONS = ("as expected", "inverted (a negative image)", "rotated by 90 degrees", "upside down")
"""The classes of the orientation check, in the order of its outputs."""
ARRAYS = ("feature_mean", "feature_scale", "orientation_w", "orientation_b", "basis", "basis_scale",
          "residual_variance", "class_means", "polarity_mean", "polarity_scale", "polarity_w", "polarity_b")  # fmt: skip
"""What ``gate.npz`` holds (float32 arrays)."""


@dataclass(frozen=True)
class GateVerdict:
    """The gate's finding for one image.

    Attributes:
        passed: Whether the image may be graded.
        check: The check that refused it (``blank``, ``aspect``, ``orientation``, ``polarity``,
            ``distance``), or ``None``.
        reason: One line a person can act on, or ``None`` when it passed.
        scores: The measured values (distance; orientation and polarity log-odds), for records.
    """

    passed: bool
    check: str | None = None
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def to_record(self) -> dict:
        return {"passed": self.passed, "check": self.check, "reason": self.reason,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}  # fmt: skip


PASSED = GateVerdict(True)


def check_image(gray: np.ndarray, histogram: np.ndarray | None = None, stored: np.ndarray | None = None) -> GateVerdict:
    """The image checks, before any inference: blank, and not one knee by its shape.

    Args:
        gray: The 2-D ``uint8`` image as the model's intensity contract made it.
        histogram: ``gray``'s 256-bin grey-level counts, when already counted (the intensity
            contract counts them, :func:`edge_infer.preprocess.standardize_with_histogram`).
        stored: The 8-bit decode, when the contract stretched a file's finer levels instead:
            a 16-bit flat field with sensor noise stretches to many levels, but is flat as stored.
    """
    h, w = gray.shape
    aspect = max(h, w) / min(h, w)
    if aspect > MAX_ASPECT:
        wide = "wider than tall" if w > h else "taller than wide"
        return GateVerdict(False, "aspect", f"not a single-knee crop: a {w}×{h} image is {aspect:.1f} times {wide}; "
                           "it looks like both knees or a whole film: crop one knee", {"aspect": aspect})  # fmt: skip
    counts = np.bincount(gray.ravel(), minlength=256) if histogram is None else histogram
    lo, hi, cdf = _percentile_levels(counts)
    spread = float(np.count_nonzero(counts[lo : hi + 1]))
    if spread < MIN_SPREAD:
        return GateVerdict(False, "blank", "not a usable radiograph: blank, nearly uniform or posterised (only "
                           f"{spread:.0f} distinct grey level{'' if spread == 1 else 's'} between its 0.5 and 99.5 percentiles)", {"spread": spread})  # fmt: skip
    if stored is not None:
        stored_lo, stored_hi, _ = _percentile_levels(np.bincount(stored.ravel(), minlength=256))
        if stored_hi - stored_lo < MIN_STORED_SPAN:
            return GateVerdict(False, "blank", "not a usable radiograph: blank or nearly uniform (as stored, its grey "
                               f"levels span {stored_hi - stored_lo} of 255)", {"spread": float(stored_hi - stored_lo)})  # fmt: skip
    empty = float(cdf[8] / cdf[-1])
    if empty > MAX_EMPTY:
        return GateVerdict(False, "field", f"not a single-knee crop: {empty:.0%} of the image is empty black "
                           "background; it looks like a whole film or a knee small in a large field: crop one knee",
                           {"empty": empty})  # fmt: skip
    return PASSED


def _percentile_levels(counts: np.ndarray) -> tuple[int, int, np.ndarray]:
    """The grey levels at the 0.5th and 99.5th percentiles of a histogram, and its cumulative counts."""
    cdf = np.cumsum(counts)
    return int(np.searchsorted(cdf, cdf[-1] * 0.005)), int(np.searchsorted(cdf, cdf[-1] * 0.995)), cdf


def pooled_features(feature_map: np.ndarray) -> np.ndarray:
    """The gate's feature vector: the ``(H, W, C)`` feature map's top half and bottom half, each
    averaged over space, concatenated (``2C``); the middle row of an odd height goes to the top."""
    fm = np.asarray(feature_map, np.float32)
    if fm.ndim != 3 or fm.shape[0] < 2:
        raise ValueError(f"the gate needs an (H, W, C) feature map with H >= 2, got shape {fm.shape}")
    return (_halves(fm.shape[0], fm.shape[1]) @ fm.reshape(-1, fm.shape[2])).ravel()


@functools.lru_cache(maxsize=8)
def _halves(h: int, w: int) -> np.ndarray:
    """``(2, h*w)`` weights that average the top and the bottom half of an ``h × w`` map: one
    small product instead of two strided means."""
    top = (h + 1) // 2
    m = np.zeros((2, h, w), np.float32)
    m[0, :top], m[1, top:] = 1.0 / (top * w), 1.0 / ((h - top) * w)
    m = m.reshape(2, h * w)
    m.setflags(write=False)  # cached and shared by every caller
    return m


def thumbnail(small: np.ndarray, side: int = THUMBNAIL) -> np.ndarray:
    """The ``(side*side,)`` block-mean thumbnail of a square ``uint8`` model input, in [0, 1]."""
    s = np.asarray(small, np.float32)
    k = s.shape[0] // side
    s = s[: k * side, : k * side].reshape(side, k, side, k).mean((1, 3))
    return (s / 255.0).ravel()


@dataclass(frozen=True)
class Thresholds:
    """Where each fitted check refuses, for one format (set on validation knees)."""

    distance: float
    orientation: float
    polarity: float

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        values = {k: d[k] for k in ("distance", "orientation", "polarity")}
        bad = {
            k: v
            for k, v in values.items()
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)
        }
        if bad:
            raise ValueError(f"gate thresholds must be finite numbers, got {bad}")
        return cls(**{k: float(v) for k, v in values.items()})


class InputGate:
    """The fitted checks of one model and format.

    Args:
        arrays: The arrays of ``gate.npz`` (:data:`ARRAYS`).
        thresholds: This format's thresholds.

    Raises:
        ValueError: missing arrays, or shapes that do not fit together.
    """

    def __init__(self, arrays: dict[str, np.ndarray], thresholds: Thresholds):
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"gate arrays lack {', '.join(missing)}")
        a = {k: np.asarray(arrays[k], np.float32) for k in ARRAYS}
        d, t = a["feature_mean"].shape[0], a["polarity_mean"].shape[0]
        k = a["basis_scale"].shape[0]
        shapes = {"feature_scale": (d,), "orientation_w": (d, len(ORIENTATIONS)), "orientation_b": (len(ORIENTATIONS),),
                  "basis": (d, k), "residual_variance": (1,), "polarity_scale": (t,), "polarity_w": (t,),
                  "polarity_b": (1,)}  # fmt: skip
        wrong = {k: a[k].shape for k, shape in shapes.items() if a[k].shape != shape}
        if wrong or a["class_means"].ndim != 2 or a["class_means"].shape[1] != d or t != THUMBNAIL**2:
            raise ValueError(f"gate arrays do not fit together (feature size {d}): {wrong or 'class_means/thumbnail'}")
        self.arrays, self.thresholds, self.feature_size = a, thresholds, d
        self._fold(a)

    def _fold(self, a: dict[str, np.ndarray]) -> None:
        """Fold the checks' linear steps into one product per image, as the gate runs on every
        knee: the feature standardisation into the orientation weights, and the per-grade
        distances into products with the feature vector (``|f - m|² = |f|² - 2 f·m + |m|²``), so
        one pass over a ``(d, k + 4 + grades)`` matrix gives every score of the features."""
        k, classes = a["basis"].shape[1], a["class_means"].shape[0]
        w_orient = a["orientation_w"] / a["feature_scale"][:, None]
        self._features_w = np.ascontiguousarray(np.concatenate([a["basis"], w_orient, a["class_means"].T], axis=1))
        self._features_w.setflags(write=False)
        self._orient_b = (a["orientation_b"] - (a["feature_mean"] / a["feature_scale"]) @ a["orientation_w"]).astype(np.float64)  # fmt: skip
        self._class_proj = (a["class_means"] @ a["basis"]).astype(np.float64)
        self._class_sq = (a["class_means"].astype(np.float64) ** 2).sum(1)
        self._slices = (slice(0, k), slice(k, k + len(ORIENTATIONS)), slice(k + len(ORIENTATIONS), k + 4 + classes))
        self._basis_scale_sq = a["basis_scale"].astype(np.float64) ** 2
        self._pixel_w: dict[int, tuple[np.ndarray, float]] = {}

    def _polarity_weights(self, side: int) -> tuple[np.ndarray, float]:
        """The polarity regression as weights on the ``side × side`` model input's pixels (the
        thumbnail is a block mean, so the whole check is linear in the pixels)."""
        if side not in self._pixel_w:
            if side < THUMBNAIL:
                raise ValueError(f"the gate needs a model input of at least {THUMBNAIL} px a side, got {side}")
            a, k = self.arrays, side // THUMBNAIL
            w = (a["polarity_w"] / a["polarity_scale"]).reshape(THUMBNAIL, THUMBNAIL) / (k * k * 255.0)
            full = np.zeros((side, side), np.float32)
            full[: k * THUMBNAIL, : k * THUMBNAIL] = np.repeat(np.repeat(w, k, 0), k, 1)
            b = float(a["polarity_b"][0] - (a["polarity_mean"] / a["polarity_scale"]) @ a["polarity_w"])
            full.setflags(write=False)
            self._pixel_w[side] = (full.ravel(), b)  # two threads may both compute it: the same values
        return self._pixel_w[side]

    def scores(self, feature_map: np.ndarray, small: np.ndarray) -> dict[str, float]:
        """Distance, orientation and polarity scores of one image's feature map and model input."""
        f = pooled_features(feature_map)
        if f.shape[0] != self.feature_size:
            raise ValueError(f"feature map gives {f.shape[0]} gate features, the gate expects {self.feature_size}")
        y = (f @ self._features_w).astype(np.float64)
        basis, orient, means = self._slices
        logits = y[orient] + self._orient_b
        wrong = logits[1:].max() + np.log(np.exp(logits[1:] - logits[1:].max()).sum())
        proj = y[basis] - self._class_proj  # (grades, k): each grade's offset along the leading eigenvectors
        f64 = f.astype(np.float64)
        residual = (f64 @ f64 - 2.0 * y[means] + self._class_sq) - (proj**2).sum(1)  # what the eigenvectors miss
        distance = float(((proj**2) @ self._basis_scale_sq + residual / self.arrays["residual_variance"][0]).min())
        if small.ndim != 2 or small.shape[0] != small.shape[1]:
            raise ValueError(f"the gate needs the square 2-D model input, got shape {small.shape}")
        pixel_w, pixel_b = self._polarity_weights(small.shape[0])
        return {
            "distance": distance,
            # log-odds, not probabilities: the regressions are confident, and thresholds at 1 - 1e-9
            # would be set on rounding noise
            "not_upright": float(wrong - logits[0]),
            "negative": float(small.reshape(-1) @ pixel_w + pixel_b),
            **{f"logit_{name.split(' ')[0]}": float(v) for name, v in zip(ORIENTATIONS, logits, strict=True)},
        }  # fmt: skip

    def verdict(self, scores: dict[str, float]) -> GateVerdict:
        """Refuse by the check that fails: far from every knee first (the orientation of a
        photograph means nothing), then a knee in the wrong orientation, then a negative."""
        t = self.thresholds
        worst = max(range(1, len(ORIENTATIONS)), key=lambda i: scores[f"logit_{ORIENTATIONS[i].split(' ')[0]}"])
        if scores["distance"] > t.distance:
            also = f"; if it is a knee, it looks {ORIENTATIONS[worst]}" if scores["not_upright"] > t.orientation else ""
            return GateVerdict(False, "distance", "not a single-knee PA crop like those the model was trained on "
                               f"(feature distance {scores['distance']:.0f} > {t.distance:.0f}): another view, joint, "
                               f"modality or a whole film; crop one knee's PA view{also}", scores)  # fmt: skip
        if scores["not_upright"] > t.orientation:
            return GateVerdict(False, "orientation", f"not a knee PA crop as the model expects: it looks "
                               f"{ORIENTATIONS[worst]}; correct the image and try again", scores)  # fmt: skip
        if scores["negative"] > t.polarity:
            return GateVerdict(False, "polarity", "not a knee PA crop as the model expects: it looks like a negative "
                               "(bone dark, background light); check the image's photometric interpretation", scores)  # fmt: skip
        return GateVerdict(True, scores=scores)

    def check(self, feature_map: np.ndarray, small: np.ndarray) -> GateVerdict:
        """The fitted checks for one image (``small``: its ``uint8`` model input, square)."""
        return self.verdict(self.scores(feature_map, small))
