"""The ordinal-decoding measurement (kneeoa_bench.ordinal): tuned cut points recover grades that
a miscalibrated model's expected grade shifts, scored on knees the cuts were not tuned on."""

from __future__ import annotations

import csv

import numpy as np

from kneeoa_bench.ordinal import compare, read_predictions


def _shifted_predictions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose mass leans one grade low: argmax and the fixed cuts under-grade."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n)
    probs = np.full((n, 5), 0.02)
    low = np.clip(truth - 1, 0, 4)
    probs[np.arange(n), low] += 0.55
    probs[np.arange(n), truth] += 0.37
    return probs / probs.sum(1, keepdims=True), truth


def test_tuned_cuts_beat_argmax_on_held_out_knees_when_the_mass_leans_low():
    probs, truth = _shifted_predictions(600, seed=1)
    for fold in compare(probs, truth)["folds"]:
        assert fold["tuned"]["qwk"] > fold["argmax"]["qwk"] + 0.05
        assert fold["tuned"]["accuracy"] > fold["argmax"]["accuracy"]


def test_a_perfect_model_is_perfect_every_way(tmp_path):
    truth = np.arange(200) % 5
    path = tmp_path / "predictions.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["input", "true", "predicted", "oa_probability", *(f"KL{k}" for k in range(5))])
        for i, t in enumerate(truth):
            w.writerow([f"k{i}.png", f"KL{t}", f"KL{t}", float(t >= 2), *np.eye(5)[t]])
    probs, read_truth = read_predictions(path)
    np.testing.assert_array_equal(read_truth, truth)
    for fold in compare(probs, read_truth)["folds"]:
        for decoding in ("argmax", "expected", "tuned"):
            assert fold[decoding]["accuracy"] == 1.0 and fold[decoding]["qwk"] == 1.0
