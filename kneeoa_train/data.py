"""Training-only helpers for folder datasets (scanning and loading live in :mod:`edge_infer.folders`)."""

from __future__ import annotations

import numpy as np


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights, normalised so the average sample weight is 1."""
    return class_weights_from_counts(np.bincount(labels, minlength=n_classes), mode)


def class_weights_from_counts(counts, mode: str) -> np.ndarray:
    """:func:`class_weights` from images per class (what a shard manifest records)."""
    counts = np.asarray(counts, np.float64)
    if mode == "none":
        return np.ones(len(counts))
    power = 0.5 if mode == "sqrt" else 1.0
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return w / ((w * counts).sum() / counts.sum())
