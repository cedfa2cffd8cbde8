"""Would ordinal decoding help? Argmax grades against the expected grade cut at tuned points.

``python -m kneeoa_bench.ordinal EVAL_DIR/predictions.csv`` reads the per-knee probabilities that
``kneeoa evaluate`` writes and compares, on the same knees:

- ``argmax``: the most probable grade (what the device reports today);
- ``expected``: the expected grade ``Σ k·p_k`` cut at 0.5, 1.5, 2.5, 3.5;
- ``tuned``: the expected grade cut at points tuned for QWK, measured honestly: two-fold
  cross-fitting (cut points tuned on one half, scored on the other, and the other way round).

It decides nothing and changes nothing; it measures a lever of issue 14 before it is built.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from edge_infer.metrics import quadratic_weighted_kappa

GRADES = 5
FIXED_CUTS = np.array([0.5, 1.5, 2.5, 3.5])


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(n, 5)`` and true grades ``(n,)`` from an evaluation's ``predictions.csv``."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    probs = np.array([[float(r[f"KL{k}"]) for k in range(GRADES)] for r in rows])
    truth = np.array([int(r["true"].removeprefix("KL")) for r in rows])
    return probs, truth


def tune_cuts(expected: np.ndarray, truth: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Cut points that maximise QWK, by coordinate search around the fixed ones."""
    cuts = FIXED_CUTS.copy()
    for _ in range(rounds):
        for i in range(len(cuts)):
            best, best_v = -1.0, cuts[i]
            for v in np.linspace(cuts[i] - 0.5, cuts[i] + 0.5, 41):
                trial = cuts.copy()
                trial[i] = v
                if np.all(np.diff(trial) > 0):
                    score = quadratic_weighted_kappa(truth, np.digitize(expected, trial), GRADES)
                    if score > best:
                        best, best_v = score, v
            cuts[i] = best_v
    return cuts


def _scores(truth: np.ndarray, grades: np.ndarray) -> dict:
    return {"accuracy": round(float((grades == truth).mean()), 3),
            "qwk": round(quadratic_weighted_kappa(truth, grades, GRADES), 3),
            "kl1_recall": round(float((grades[truth == 1] == 1).mean()), 3)}  # fmt: skip


def compare(probs: np.ndarray, truth: np.ndarray, seed: int = 0) -> dict:
    """The three decodings' accuracy, QWK and KL 1 recall, each half scored by cuts tuned on the other."""
    expected = probs @ np.arange(GRADES)
    order = np.random.default_rng(seed).permutation(len(truth))
    halves = (order[: len(truth) // 2], order[len(truth) // 2 :])
    out: dict = {"n": len(truth), "folds": []}
    for fit, held in (halves, halves[::-1]):
        cuts = tune_cuts(expected[fit], truth[fit])
        out["folds"].append({
            "cuts": [round(float(c), 3) for c in cuts],
            "argmax": _scores(truth[held], probs[held].argmax(1)),
            "expected": _scores(truth[held], np.digitize(expected[held], FIXED_CUTS)),
            "tuned": _scores(truth[held], np.digitize(expected[held], cuts)),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="predictions.csv written by `kneeoa evaluate`")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(compare(*read_predictions(args.predictions), seed=args.seed), indent=1))


if __name__ == "__main__":
    main()
