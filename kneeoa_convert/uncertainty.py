"""Fitting what makes the device say when it is unsure (:mod:`edge_infer.calibration`), per
shipped format, on validation knees run through that format exactly as the device runs them
(the input gate on: a knee it refuses is never reported, so it is not fitted on).

- **Temperature** ``T``: the one number minimising the negative log-likelihood of the true KL
  grade under ``softmax(log p / T)``, found by a grid over ``log T`` refined by golden section.
- **Expected calibration error** (ECE): top-label confidence against accuracy in 15 equal-width
  bins, weighted by bin size; reported before and after.
- **Refer band** ``[low, high)`` around the threshold: of all bands whose called knees (outside
  it) reach ``sensitivity`` and ``specificity`` for KL >= 2, the one that refers fewest knees.

The band and temperature are chosen and measured on the same validation knees: the figures are
optimistic for new knees, and the model card says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_infer.calibration import Calibration
from edge_infer.metrics import expected_calibration_error, negative_log_likelihood
from edge_infer.screening import Screening

REFER_SENSITIVITY = 0.90
REFER_SPECIFICITY = 0.90


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL of ``labels`` (grid over ``log T`` in [-2, 2], then golden section)."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(1, keepdims=True)
        return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(1))).mean())

    grid = np.linspace(-2.0, 2.0, 81)
    best = int(np.argmin([nll(g) for g in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    return float(np.exp((lo + hi) / 2.0))


def fit_refer_band(scores: np.ndarray, positive: np.ndarray, threshold: float,
                   sensitivity: float = REFER_SENSITIVITY, specificity: float = REFER_SPECIFICITY) -> tuple[tuple[float, float], dict]:  # fmt: skip
    """The narrowest band ``[low, high)`` holding ``threshold`` whose called knees reach both
    targets; the widest candidate (everything referred) when none does."""
    s = np.asarray(scores, np.float64)
    pos = np.asarray(positive, bool)
    lows = np.unique(np.concatenate([s[s <= threshold], [threshold]]))
    highs = np.unique(np.concatenate([s[s > threshold] + 1e-9, [threshold]]))
    best = None
    for low in lows:
        below = s < low
        tn, fn = np.sum(below & ~pos), np.sum(below & pos)
        for high in highs:  # ascending: the first that reaches the targets is the narrowest for this low
            above = s >= high
            tp, fp = np.sum(above & pos), np.sum(above & ~pos)
            sens = tp / (tp + fn) if tp + fn else 0.0
            spec = tn / (tn + fp) if tn + fp else 0.0
            if sens >= sensitivity and spec >= specificity:
                referred = 1.0 - (below.sum() + above.sum()) / len(s)
                if best is None or referred < best[0]:
                    best = (referred, float(low), float(high), float(sens), float(spec))
                break
    if best is None:
        return (0.0, 1.0), {"referral_rate": 1.0, "sensitivity": None, "specificity": None, "reached": False}
    referred, low, high, sens, spec = best
    return (low, high), {"referral_rate": round(referred, 4), "called_sensitivity": round(sens, 4),
                                             "called_specificity": round(spec, 4), "reached": True}  # fmt: skip


def fit_format(probs: np.ndarray, labels: np.ndarray, screening: Screening, sensitivity: float,
               specificity: float) -> Calibration:  # fmt: skip
    """One format's calibration from its device probabilities on labelled validation knees."""
    t = fit_temperature(probs, labels)
    calibrated = Calibration(t).apply(probs)
    scores = screening.score(calibrated)
    positive = np.isin(labels, screening.positive_indices)
    band, band_figures = fit_refer_band(scores, positive, screening.threshold, sensitivity, specificity)
    figures = {
        "n": len(labels),
        "ece_before": round(expected_calibration_error(probs, labels), 4),
        "ece_after": round(expected_calibration_error(calibrated, labels), 4),
        "nll_before": round(negative_log_likelihood(probs, labels), 4),
        "nll_after": round(negative_log_likelihood(calibrated, labels), 4),
        "target_sensitivity": sensitivity,
        "target_specificity": specificity,
        **band_figures,
    }
    return Calibration(round(t, 4), band, figures)


def calibrate_model(model_dir: str | Path, val_dir: str | Path, sensitivity: float = REFER_SENSITIVITY,
                    specificity: float = REFER_SPECIFICITY) -> dict[str, dict]:  # fmt: skip
    """Fit every shipped format of ``model_dir`` on the labelled ``val_dir`` and record each
    calibration in its manifest entry; returns the blocks written."""
    from edge_infer.classifier import Classifier
    from edge_infer.errors import DatasetError
    from edge_infer.folders import scan_class_folders
    from edge_infer.manifest import MANIFEST_FILE, load_manifest

    from .model_card import write_model_card
    from .selftest import record_self_test

    manifest = load_manifest(model_dir)
    dataset = scan_class_folders(val_dir)
    if dataset.classes != manifest.classes:
        raise DatasetError(f"{val_dir}: classes {dataset.classes} are not the model's {manifest.classes}")
    blocks = {}
    for fmt in manifest.artifacts:
        with Classifier(model_dir, format=fmt, calibrate=False) as clf:
            graded = [(r.prediction, label) for r, label in zip(clf.predict_many(dataset.paths, heatmap=False),
                                                                 dataset.labels, strict=True) if r.ok]  # fmt: skip
        probs = np.array([[p.probabilities[c] for c in manifest.classes] for p, _ in graded])
        labels = np.array([label for _, label in graded])
        blocks[fmt] = {**fit_format(probs, labels, manifest.screening, sensitivity, specificity).to_dict(),
                       "fitted_on": str(val_dir)}  # fmt: skip
    path = Path(model_dir) / MANIFEST_FILE
    data = json.loads(path.read_text())
    for fmt, block in blocks.items():
        data["artifacts"][fmt]["calibration"] = block
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    load_manifest(model_dir)  # what we wrote must be what the device accepts
    record_self_test(model_dir, command=(data.get("self_test") or {}).get("command"), changed=())  # answers change
    write_model_card(model_dir)
    return blocks
