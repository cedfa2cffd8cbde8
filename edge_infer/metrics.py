"""Classification metrics in plain numpy, shared by training, conversion checks and evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .screening import Screening


def json_safe(value):
    """NaN and infinities (an AUC over one class, a ratio over zero cases) are not JSON: ``None``."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with true classes on rows and predicted classes on columns."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa with quadratic weights, the usual agreement measure for ordinal KL grades."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    n = cm.sum()
    if n == 0:
        return float("nan")
    idx = np.arange(n_classes)
    weights = (idx[:, None] - idx[None, :]) ** 2 / max((n_classes - 1) ** 2, 1)
    expected = np.outer(cm.sum(1), cm.sum(0)) / n
    denom = (weights * expected).sum()
    return float(1.0 - (weights * cm).sum() / denom) if denom > 0 else float("nan")


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties counted half); NaN with one class only."""
    y = np.asarray(y_true, bool)
    s = np.asarray(score, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points from the strictest threshold to the loosest: ``(fpr, tpr, thresholds)``, starting
    at (0, 0) with threshold +inf; one point per distinct score (a positive call is ``score >= t``)."""
    y = np.asarray(y_true, bool)
    s = np.asarray(score, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, int)
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return (np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, s[last_of_tie]])


def figure(value, digits: int = 3, scale: float = 1.0, missing: str = "n/a") -> str:
    """A figure for a table or a card: ``value × scale`` to ``digits`` decimals, or ``missing``
    for an undefined one (``None``, NaN)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return missing
    return f"{value * scale:.{digits}f}"


def top1_agreement(a, b) -> float | None:
    """Share of items on which two sequences of predicted classes agree (``None`` when empty)."""
    a, b = np.asarray(a), np.asarray(b)
    return float((a == b).mean()) if len(a) else None


def screening_at_threshold(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Sensitivity, specificity and the 2×2 counts when ``score >= threshold`` calls positive."""
    y = np.asarray(y_true, bool)
    call = np.asarray(score, np.float64) >= threshold
    tp, fn = int((call & y).sum()), int((~call & y).sum())
    fp, tn = int((call & ~y).sum()), int((~call & ~y).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "threshold": float(threshold),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "positive_predictive_value": ratio(tp, tp + fp),
        "negative_predictive_value": ratio(tn, tn + fn),
        "counts": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
    }


def classification_summary(y_true: np.ndarray, probs: np.ndarray, screening: Screening | None = None) -> dict:
    """Accuracy, balanced accuracy, per-class recall, QWK, MAE and (optionally) screening AUC.

    Args:
        y_true: Integer class indices.
        probs: ``(n, n_classes)`` probabilities.
        screening: The model's screening rule; when given, ``screening_auc`` is computed from
            its score (the summed probability of the positive group, e.g. KL ≥ 2).
    """
    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, np.float64)
    n_classes = probs.shape[1]
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(1)
    recall = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    out = {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "balanced_accuracy": float(np.nanmean(recall)),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(y_true, y_pred, n_classes),
        "mean_absolute_error": float(np.abs(y_pred - y_true).mean()) if len(y_true) else float("nan"),
        "recall_per_class": [None if np.isnan(r) else float(r) for r in recall],
        "confusion_matrix": cm.tolist(),
    }
    if screening is not None:
        out["screening_auc"] = roc_auc(np.isin(y_true, screening.positive_indices), screening.score(probs))
    return out


ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error and the reliability diagram."""


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE over ``bins`` equal-width confidence bins."""
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total / len(labels))


def reliability_table(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, count, mean confidence and accuracy (the reliability diagram's points)."""
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "n": int(mask.sum()),
                     "confidence": float(conf[mask].mean()) if mask.any() else None,
                     "accuracy": float(correct[mask].mean()) if mask.any() else None})  # fmt: skip
    return rows
