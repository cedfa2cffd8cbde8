"""Saying when it is unsure: calibrated probabilities and a "Refer" band.

``kneeoa convert`` fits, per shipped format, on validation knees through that format
(:mod:`kneeoa_convert.uncertainty`):

- a **temperature** ``T`` (temperature scaling, Guo et al. 2017): the device reports
  ``softmax(log p / T)``, which keeps the top class and so the KL grade, and makes the
  probabilities mean what they say (expected calibration error before and after is in the manifest
  and the model card);
- a **refer band** ``[low, high)`` on the calibrated screening score P(OA): inside it, the
  screening result is ``Refer`` (uncertain: a clinician reads the image) instead of
  ``Normal``/``Osteoarthritis``. The band is the narrowest one around the threshold with which the
  knees it does call reach the stated sensitivity and specificity on validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .labels import REFER_LABEL
from .screening import Screening

MAX_TEMPERATURE = 20.0
"""Temperatures outside ``[1/MAX_TEMPERATURE, MAX_TEMPERATURE]`` are refused as a broken fit."""


@dataclass(frozen=True)
class Calibration:
    """One format's calibration, as its manifest entry records it.

    Attributes:
        temperature: Divides the log-probabilities; 1 changes nothing.
        refer_band: ``(low, high)`` on the calibrated P(OA): ``low <= P < high`` is referred;
            ``None`` refers nothing.
        figures: What the fit measured (ECE, NLL, sensitivity, specificity, referral rate, n),
            for people; the device does not use them.

    Raises:
        ValueError: a temperature or band that cannot be (see :meth:`from_dict`).
    """

    temperature: float = 1.0
    refer_band: tuple[float, float] | None = None
    figures: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"calibration.temperature must be a finite number, got {t!r}")
        if not 1.0 / MAX_TEMPERATURE <= t <= MAX_TEMPERATURE:
            raise ValueError(f"calibration.temperature {t} is outside [{1 / MAX_TEMPERATURE:g}, {MAX_TEMPERATURE:g}]")
        if self.refer_band is not None:
            low, high = self.refer_band
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)
            ):
                raise ValueError(f"calibration.refer_band must be two finite numbers, got {self.refer_band!r}")
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"calibration.refer_band must satisfy 0 <= low <= high <= 1, got {self.refer_band!r}")

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """``softmax(log p / T)`` of ``(classes,)`` or ``(n, classes)`` probabilities (zeros stay zero)."""
        p = np.asarray(probabilities, np.float64)
        if self.temperature == 1.0:
            return p
        scaled = np.power(p, 1.0 / self.temperature)
        total = scaled.sum(-1, keepdims=True)
        return np.where(total > 0, scaled / np.where(total > 0, total, 1.0), p)

    def refers(self, score: np.ndarray | float) -> np.ndarray | bool:
        """Whether a calibrated screening score falls in the refer band."""
        s = np.asarray(score, np.float64)
        out = (
            np.zeros(s.shape, bool) if self.refer_band is None else (s >= self.refer_band[0]) & (s < self.refer_band[1])
        )
        return bool(out) if out.ndim == 0 else out

    def label(self, screening: Screening, score: float) -> str:
        """``Refer`` inside the band, else the screening label."""
        return REFER_LABEL if self.refers(score) else screening.label(score)

    def check_against(self, screening: Screening) -> None:
        """The band must hold the screening threshold (an edge may sit on it: the band then refers
        only the knees on one side, as a fit may choose)."""
        if self.refer_band is not None and not self.refer_band[0] <= screening.threshold <= self.refer_band[1]:
            raise ValueError(f"calibration.refer_band {list(self.refer_band)} does not hold the screening "
                             f"threshold {screening.threshold}")  # fmt: skip

    def to_dict(self) -> dict:
        return {"method": "temperature scaling", "temperature": self.temperature,
                "refer_band": None if self.refer_band is None else list(self.refer_band), **self.figures}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Read a manifest artifact's ``calibration`` block.

        Raises:
            KeyError: ``temperature`` is missing.
            ValueError: a field is invalid.
        """
        if not isinstance(data, dict):
            raise ValueError(f"calibration must be an object, got {type(data).__name__}")
        band = data.get("refer_band")
        if band is not None and (not isinstance(band, list) or len(band) != 2):
            raise ValueError(f"calibration.refer_band must be [low, high] or null, got {band!r}")
        figures = {k: v for k, v in data.items() if k not in ("method", "temperature", "refer_band")}
        return cls(data["temperature"], None if band is None else (band[0], band[1]), figures)


IDENTITY = Calibration()
"""What a model converted before calibration existed gets: probabilities as they are, no band."""


def calibration_of(manifest, fmt: str) -> Calibration:
    """The calibration a manifest records for format ``fmt`` (:data:`IDENTITY` when it has none).

    Raises:
        ManifestError: the block is invalid, or its band does not hold the screening threshold.
    """
    from .errors import ManifestError

    block = manifest.artifacts[fmt].info.get("calibration")
    if block is None:
        return IDENTITY
    try:
        calibration = Calibration.from_dict(block)
        if manifest.screening is not None:
            calibration.check_against(manifest.screening)
        elif calibration.refer_band is not None:
            raise ValueError("calibration.refer_band needs a screening grouping")
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{manifest.model_dir}: artifacts.{fmt}.calibration: {e}") from None
    return calibration
