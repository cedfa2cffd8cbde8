"""Numerical parity of a converted file against the Keras model it came from."""

from __future__ import annotations

import numpy as np

from edge_infer.gradcam import gradcam_from_features
from edge_infer.metrics import classification_summary, screening_at_threshold, top1_agreement
from edge_infer.runtimes import Runtime, device_probabilities
from edge_infer.screening import Screening

CONFIDENT_MARGIN = 0.1
"""Gap between Keras's two most probable classes above which a knee counts as a clear call."""


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two arrays; for a constant array (r undefined): 1.0 if the arrays are equal, else 0.0."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt((da * da).sum() * (db * db).sum())
    if denom == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float((da * db).sum() / denom)


def keras_reference(export_model, x: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and feature maps of the float32 Keras model."""
    probs, feats = export_model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(probs), np.asarray(feats)


def measure_parity(
    runtime: Runtime,
    x: np.ndarray,
    labels: np.ndarray,
    ref_probs: np.ndarray,
    ref_features: np.ndarray,
    head: dict[str, np.ndarray],
    screening: Screening | None = None,
) -> tuple[dict, np.ndarray]:
    """Run ``runtime`` on each image and compare with the Keras reference.

    The format's probabilities are taken as the device reports them
    (:func:`edge_infer.runtimes.device_probabilities`), so every figure is of what ``edge-infer``
    prints.

    Returns:
        The figures, and this format's ``(n, classes)`` probabilities. Figures: ``n``, ``top1_agreement``, ``mean_abs_dp``, ``max_abs_dp`` (probabilities),
        ``gradcam_r_mean``/``gradcam_r_min`` (Pearson r of the numpy Grad-CAM from this format's
        feature map vs from Keras's, for the Keras top class), ``keras_accuracy``, and this
        format's own figures on the labelled images (``accuracy``, ``quadratic_weighted_kappa``,
        ``screening_auc``, ``sensitivity`` and ``specificity`` at the screening threshold, …).
    """
    probs, rs = _run_each(runtime, x, ref_probs, ref_features, head)
    dp = np.abs(probs - ref_probs)
    agree = probs.argmax(1) == ref_probs.argmax(1)
    top2 = np.sort(ref_probs, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= CONFIDENT_MARGIN
    return {
        "n": len(x),
        "top1_agreement": float(agree.mean()),
        # Disagreements concentrate where Keras itself hesitates between two grades.
        "top1_agreement_when_keras_margin_ge_0.1": float(agree[confident].mean()) if confident.any() else None,
        "keras_margin_ge_0.1_share": float(confident.mean()),
        "mean_abs_dp": float(dp.mean()),
        "max_abs_dp": float(dp.max()),
        "gradcam_r_mean": float(np.mean(rs)),
        "gradcam_r_min": float(np.min(rs)),
        "keras_accuracy": float((ref_probs.argmax(1) == labels).mean()),
        **{k: v for k, v in classification_summary(labels, probs, screening).items() if k != "n"},
        **_screening_calls(labels, probs, screening),
    }, probs


def _run_each(runtime: Runtime, x: np.ndarray, ref_probs: np.ndarray, ref_features: np.ndarray, head: dict):
    """This format's device probabilities, and the Grad-CAM correlation with Keras's, per image."""
    probs, rs = [], []
    for i in range(len(x)):
        out = runtime.run(x[i : i + 1])
        probs.append(out["probabilities"][0])
        top = int(ref_probs[i].argmax())
        mine, theirs = (
            gradcam_from_features(out["features"][0], head, top),
            gradcam_from_features(ref_features[i], head, top),
        )
        rs.append(pearson(mine, theirs))
    return device_probabilities(np.asarray(probs)), rs


def _screening_calls(labels: np.ndarray, probs: np.ndarray, screening: Screening | None) -> dict:
    if not screening:
        return {}
    at = screening_at_threshold(
        np.isin(labels, screening.positive_indices), screening.score(probs), screening.threshold
    )
    return {
        "screening_threshold": screening.threshold,
        "sensitivity": at["sensitivity"],
        "specificity": at["specificity"],
    }


def pairwise_agreement(predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Top-1 agreement between every pair of formats' ``(n, classes)`` probabilities."""
    names = list(predictions)
    return {
        f"{a} vs {b}": top1_agreement(predictions[a].argmax(1), predictions[b].argmax(1))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
