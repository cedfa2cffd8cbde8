from __future__ import annotations

import numpy as np
import pytest

from edge_infer.metrics import classification_summary, confusion_matrix, quadratic_weighted_kappa, roc_auc
from edge_infer.screening import Screening


def test_kappa_perfect_chance_and_hand_computed():
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    assert quadratic_weighted_kappa(y, y, 5) == pytest.approx(1.0)
    # Two classes, predictions independent of truth: kappa 0.
    assert quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 0, 1], 2) == pytest.approx(0.0)
    # Hand computation: observed weighted disagreement 1/4 (one pair off by 1 of 2 classes).
    # O = [[1,1],[0,2]]; E = rows (2,2) x cols (1,3) / 4 = [[.5,1.5],[.5,1.5]]; w = [[0,1],[1,0]]
    # kappa = 1 - (1) / (1.5 + .5) = 0.5
    assert quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1], 2) == pytest.approx(0.5)


def test_auc_ranks_and_ties():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([0, 1, 0, 1], [0.1, 0.4, 0.5, 0.8]) == pytest.approx(0.75)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_summary_fields():
    probs = np.eye(5)[[0, 1, 2, 3, 4, 4]]
    y = np.array([0, 1, 2, 3, 4, 3])
    kl = ("KL0", "KL1", "KL2", "KL3", "KL4")
    s = classification_summary(y, probs, Screening(kl, ("KL2", "KL3", "KL4")))
    assert s["accuracy"] == pytest.approx(5 / 6)
    assert s["mean_absolute_error"] == pytest.approx(1 / 6)
    assert s["recall_per_class"][3] == pytest.approx(0.5)
    assert s["screening_auc"] == pytest.approx(1.0)
    assert confusion_matrix(y, probs.argmax(1), 5)[3, 4] == 1


def test_roc_curve_points_and_area():
    from edge_infer.metrics import roc_curve

    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    fpr, tpr, thr = roc_curve(y, s)
    # Thresholds, strictest first: inf, 0.9, 0.8, 0.4 (two negatives tie), 0.35, 0.1.
    assert thr.tolist() == [np.inf, 0.9, 0.8, 0.4, 0.35, 0.1]
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert fpr.tolist() == pytest.approx([0, 0, 0, 2 / 3, 2 / 3, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))


def test_screening_at_threshold_counts():
    from edge_infer.metrics import screening_at_threshold

    r = screening_at_threshold([1, 1, 1, 0, 0], [0.9, 0.5, 0.2, 0.5, 0.1], threshold=0.5)
    assert r["counts"] == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}  # 0.5 itself calls positive
    assert (r["sensitivity"], r["specificity"]) == pytest.approx((2 / 3, 1 / 2))
    assert r["positive_predictive_value"] == pytest.approx(2 / 3)
    assert np.isnan(screening_at_threshold([0, 0], [0.1, 0.2], 0.5)["sensitivity"])  # no positives
