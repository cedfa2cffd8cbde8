"""The screening rule, as one frozen type that the manifest holds and every caller uses.

A screening model groups its classes into a positive group (KL ≥ 2: "Osteoarthritis") and the
rest ("Normal"). The score of an image is the summed probability of the positive classes, and the
label is positive when the score reaches the threshold. The device, evaluation, conversion
checks and the benchmarks all call :meth:`Screening.score` and :meth:`Screening.label`; nothing
re-derives them from dict keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .labels import KL_OA_MIN_GRADE, NEGATIVE_LABEL, POSITIVE_LABEL


@dataclass(frozen=True)
class Screening:
    """Which classes are screening-positive, and where the decision threshold lies.

    Attributes:
        classes: Every class of the model, in output order.
        positive_classes: The positive group (a non-empty, proper subset of ``classes``).
        threshold: A score at or above it is positive; strictly between 0 and 1.
        positive_label: Label of a positive call (``Osteoarthritis``).
        negative_label: Label of a negative call (``Normal``).
        rule: How the group was chosen, for people (``KL >= 2``).

    Raises:
        ValueError: a group or threshold that cannot screen (see the attributes).
    """

    classes: tuple[str, ...]
    positive_classes: tuple[str, ...]
    threshold: float = 0.5
    positive_label: str = POSITIVE_LABEL
    negative_label: str = NEGATIVE_LABEL
    rule: str = ""

    def __post_init__(self) -> None:
        unknown = [c for c in self.positive_classes if c not in self.classes]
        if unknown:
            raise ValueError(f"screening.positive_classes {unknown} are not classes of the model {list(self.classes)}")
        if not self.positive_classes or len(set(self.positive_classes)) >= len(self.classes):
            raise ValueError("screening.positive_classes must be some, not all, of the classes")
        if len(set(self.positive_classes)) != len(self.positive_classes):
            raise ValueError(f"screening.positive_classes {list(self.positive_classes)} repeat a class")
        if (
            not isinstance(self.threshold, (int, float))
            or not (0.0 < float(self.threshold) < 1.0)
            or math.isnan(self.threshold)
        ):
            raise ValueError(f"screening.threshold must be a number strictly between 0 and 1, got {self.threshold!r}")
        labels = (self.positive_label, self.negative_label)
        if not all(isinstance(x, str) and x.strip() for x in labels) or labels[0] == labels[1]:
            raise ValueError(f"screening labels must be two different non-empty strings, got {list(labels)}")

    @property
    def positive_indices(self) -> tuple[int, ...]:
        """Output indices of the positive classes."""
        return tuple(self.classes.index(c) for c in self.positive_classes)

    def score(self, probabilities: np.ndarray) -> np.ndarray | float:
        """Summed probability of the positive classes: a float for one image's ``(classes,)``
        vector, an array for ``(n, classes)``."""
        p = np.asarray(probabilities, np.float64)
        s = p[..., list(self.positive_indices)].sum(-1)
        return float(s) if np.ndim(s) == 0 else s

    def is_positive(self, score: np.ndarray | float) -> np.ndarray | bool:
        """``score >= threshold``, element-wise."""
        out = np.asarray(score, np.float64) >= self.threshold
        return bool(out) if out.ndim == 0 else out

    def label(self, score: float) -> str:
        """The screening label of one image's score."""
        return self.positive_label if self.is_positive(score) else self.negative_label

    def to_dict(self) -> dict:
        """The manifest's ``screening`` block (the classes live beside it in the manifest)."""
        return {
            "negative_label": self.negative_label,
            "positive_label": self.positive_label,
            "positive_classes": list(self.positive_classes),
            "rule": self.rule,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: dict, classes: list[str] | tuple[str, ...]) -> Screening:
        """Read a manifest's ``screening`` block for a model with ``classes``.

        Raises:
            KeyError: a field is missing.
            ValueError: a field is invalid.
        """
        missing = [k for k in ("positive_classes", "threshold", "positive_label", "negative_label") if k not in data]
        if missing:
            raise KeyError(f"screening lacks {', '.join(missing)}")
        positive = data["positive_classes"]
        if not isinstance(positive, list) or not all(isinstance(c, str) for c in positive):
            raise ValueError(f"screening.positive_classes must be a list of class names, got {positive!r}")
        threshold = data["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(f"screening.threshold must be a number, got {threshold!r}")
        return cls(
            tuple(classes),
            tuple(positive),
            float(threshold),
            data["positive_label"],
            data["negative_label"],
            str(data.get("rule", "")),
        )

    @classmethod
    def for_classes(cls, classes: list[str], kl_grades: list[int] | None, threshold: float = 0.5) -> Screening | None:
        """The grouping a training set implies: KL ≥ 2 for KL grades; otherwise a class named
        ``Osteoarthritis`` or ``OA`` (any case); ``None`` when there is no such class."""
        if kl_grades is not None:
            positive = [c for c, g in zip(classes, kl_grades, strict=True) if g >= KL_OA_MIN_GRADE]
            rule = f"KL >= {KL_OA_MIN_GRADE}"
        else:
            positive = [c for c in classes if c.lower() in ("osteoarthritis", "oa")]
            rule = "class named Osteoarthritis/OA"
            if not positive:
                return None
        return cls(tuple(classes), tuple(positive), threshold, rule=rule)
