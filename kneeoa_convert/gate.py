"""Fitting the input gate (:mod:`edge_infer.gate`) of a model directory, on the edge runtime.

``kneeoa convert`` calls :func:`fit_gate` after it writes the formats, so the gate always matches
the model and its preprocessing; ``kneeoa gate MODEL_DIR`` refits an existing model directory.
Nothing here needs TensorFlow: features come from the shipped formats through the device's own
preprocessing.

1. Draw ``n_fit`` training knees (class-balanced), run the default format, and keep each knee's
   pooled features and model-input thumbnail. Make three wrong versions of each model input
   (inverted, rotated by ±90°, upside down) and run those too.
2. Fit the Gaussians (class means, one shared covariance shrunk towards its mean variance), the
   orientation regression (knee / inverted / rotated / upside down) and the polarity regression
   (thumbnail of a knee / of its negative).
   Knees that are themselves stored as negatives (bone dark; kneeKL224 holds some: 14 of its 826
   validation knees, 7 patients, both knees each) are found by that polarity regression and left
   out, and the three regressions fitted again: for them, "the knee" and "its negative" are the
   wrong way round.
3. The polarity check refuses at its own decision boundary (:data:`POLARITY_BOUNDARY`): a negative
   is never what the model was made for, wherever it came from. Score the validation knees and set
   the distance and orientation thresholds at one common percentile of the scores of the knees it
   passes: the highest refusal rate whose union with the negatives refuses at most ``target``.

Each shipped format is fitted on its own features: quantisation moves them enough that a gate
fitted on onnx-int8 features refused only 89% of the out-of-distribution set on tflite-dynamic
(98% on onnx-int8) at the same false-refusal rate.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edge_infer.classifier import Classifier
from edge_infer.errors import DatasetError
from edge_infer.folders import balanced_order, scan_class_folders
from edge_infer.gate import (
    GATE_FILE,
    ORIENTATIONS,
    InputGate,
    Thresholds,
    check_image,
    pooled_features,
    thumbnail,
)
from edge_infer.manifest import sha256_file
from edge_infer.preprocess import to_model_input

from .defaults import DEFAULT_TARGET

log = logging.getLogger(__name__)

BASIS = 256
"""Leading eigenvectors kept of the covariance (the rest share one variance). Measured on the v1
model's onnx-int8 features: 128 or 256 directions refused as much of the out-of-distribution set
as the full 1536 × 1536 matrix (256: 93.5% by distance alone, full: 92.6%) in 1.5 MB, not 9.4."""
SHRINKAGE = 0.01
"""Covariance shrinkage towards ``mean variance × I``; measured on the 128 px v1 model: 0 lets the
threshold blow up (singular directions), 0.01–0.1 refuse the same out-of-distribution images."""
MIN_FIT_IMAGES = 20
POLARITY_BOUNDARY = 0.0
"""Log-odds above which the polarity check refuses an image as a negative: its regression's own
boundary (a knee and its negative, in equal numbers, were its two classes). The fit reports the
scores on either side of it on the validation knees (``polarity_scores`` in the manifest): for
the v1 model a wide gap, and the knees above it are negatives, as seen by eye."""
METHOD = (
    "image checks (blank, aspect ratio); orientation softmax regression on top/bottom-pooled features; "
    "polarity logistic regression on a 16x16 thumbnail; minimum Mahalanobis distance of the pooled features "
    "to per-grade Gaussians with a shared, shrunk covariance (Lee et al. 2018)"
)


def _wrong_versions(small: np.ndarray, i: int) -> list[np.ndarray]:
    """The model input as it arrives wrong: negative, rotated by ±90°, upside down (orientation order)."""
    return [255 - small, np.ascontiguousarray(np.rot90(small, 1 if i % 2 else 3)), np.ascontiguousarray(small[::-1])]


def _training_features(clf: Classifier, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Pooled features of each knee and its wrong versions ``(n, 4, d)``, thumbnails ``(n, 2, t)``
    (knee, negative), and the indices of the paths that loaded."""
    spec = clf.manifest.preprocess
    feats, thumbs, ok = [], [], []
    for i, path in enumerate(paths):
        try:
            prepared = clf.prepare(path)
        except Exception as e:  # an unreadable training file: skip it, say so
            log.warning("gate fit: skipped %s", e)
            continue
        versions = [prepared.small, *_wrong_versions(prepared.small, i)]
        feats.append([pooled_features(clf.runtime.run(to_model_input(v, spec))["features"][0]) for v in versions])
        thumbs.append([thumbnail(versions[0]), thumbnail(versions[1])])
        ok.append(i)
    return np.asarray(feats, np.float32), np.asarray(thumbs, np.float32), ok


def _softmax_regression(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3, steps: int = 400):
    """Standardised multinomial logistic regression by full-batch gradient descent."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / scale
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    for _ in range(steps):
        z = xs @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        p /= len(y)
        w -= 0.5 * (xs.T @ p + l2 * w)
        b -= 0.5 * p.sum(0)
    return mean, scale, w, b


def fit_arrays(feats: np.ndarray, thumbs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The gate's arrays from training features ``(n, 4, d)``, thumbnails ``(n, 2, t)`` and grades."""
    knees = feats[:, 0].astype(np.float64)
    present = np.unique(labels)
    means = np.stack([knees[labels == c].mean(0) for c in present])
    resid = knees - means[np.searchsorted(present, labels)]
    cov = resid.T @ resid / len(knees)
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / len(cov) * np.eye(len(cov))
    eigval, eigvec = np.linalg.eigh(cov)
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    rank = min(BASIS, len(eigval) - 1)
    n, k, d = feats.shape
    f_mean, f_scale, o_w, o_b = _softmax_regression(feats.reshape(n * k, d), np.tile(np.arange(k), n), k)
    t = thumbs.shape[2]
    p_mean, p_scale, p_w, p_b = _softmax_regression(thumbs.reshape(n * 2, t), np.tile([0, 1], n), 2)
    arrays = {
        "feature_mean": f_mean, "feature_scale": f_scale, "orientation_w": o_w, "orientation_b": o_b,
        "basis": eigvec[:, :rank], "basis_scale": 1 / np.sqrt(eigval[:rank]), "residual_variance": [eigval[rank:].mean()],
        "class_means": means, "polarity_mean": p_mean, "polarity_scale": p_scale,
        # two-class softmax as one logistic: P(negative) = sigmoid(x·(w1 - w0) + b1 - b0)
        "polarity_w": p_w[:, 1] - p_w[:, 0], "polarity_b": np.array([p_b[1] - p_b[0]]),
    }  # fmt: skip
    return {key: np.asarray(v, np.float32) for key, v in arrays.items()}


def fit_without_negatives(feats: np.ndarray, thumbs: np.ndarray, labels: np.ndarray) -> tuple[dict, int]:
    """:func:`fit_arrays` on the training knees that are not stored as negatives (found by
    :func:`stored_negatives`); returns the arrays and how many knees were left out."""
    negative = stored_negatives(thumbs)
    if not negative.any() or negative.all():
        return fit_arrays(feats, thumbs, labels), 0
    return fit_arrays(feats[~negative], thumbs[~negative], labels[~negative]), int(negative.sum())


def stored_negatives(thumbs: np.ndarray) -> np.ndarray:
    """Which knees' own thumbnails (``thumbs[:, 0]``) a polarity regression fitted on the *other*
    half of the knees calls negatives. Cross-fitted: scored by the regression that learned them,
    the swapped pairs are learned as they are (256 pixels fit 5% of labels the wrong way round)."""
    n = len(thumbs)
    halves = np.arange(n) % 2 == 0
    found = np.zeros(n, bool)
    for fit_on in (halves, ~halves):
        if fit_on.sum() < 2 or (~fit_on).sum() < 1:
            continue
        t = thumbs[fit_on]
        mean, scale, w, b = _softmax_regression(t.reshape(-1, t.shape[2]), np.tile([0, 1], len(t)), 2)
        x = (thumbs[~fit_on, 0] - mean) / scale
        found[~fit_on] = x @ (w[:, 1] - w[:, 0]) + (b[1] - b[0]) > POLARITY_BOUNDARY
    return found


def validation_scores(clf: Classifier, gate: InputGate, paths: list[Path]) -> dict[str, np.ndarray]:
    """Each validation knee's scores; knees the image checks already refuse count as refused."""
    keys = ("distance", "not_upright", "negative")
    rows = []
    for path in paths:
        prepared = clf.prepare(path)
        if not check_image(prepared.gray).passed:
            rows.append([np.inf] * 3)
            continue
        s = gate.scores(clf.runtime.run(prepared.x)["features"][0], prepared.small)
        rows.append([s[k] for k in keys])
    scores = np.asarray(rows, np.float64)
    return {k: scores[:, i] for i, k in enumerate(keys)}


def set_thresholds(scores: dict[str, np.ndarray], target: float) -> tuple[Thresholds, dict]:
    """Polarity at :data:`POLARITY_BOUNDARY`; distance and orientation at the lowest common
    percentile of the scores of the knees it passes whose union with it refuses at most ``target``.

    The report counts each refused knee once, by the first check that refuses it in the order the
    device checks (image checks, distance, orientation, polarity), and gives the polarity scores
    on either side of the boundary (the gap the boundary sits in).

    Raises:
        DatasetError: the negatives alone, or the image checks, refuse more than ``target``.
    """
    keys = ("distance", "not_upright")
    image = ~np.isfinite(scores["negative"])  # refused by the image checks: scored inf
    negative = scores["negative"] > POLARITY_BOUNDARY  # inf counts here too
    kept = ~negative & np.all([np.isfinite(scores[k]) for k in keys], axis=0)
    chosen = None
    for q in np.arange(100.0, 90.0, -0.01) if kept.any() else ():
        t = {k: float(np.percentile(scores[k][kept], q)) for k in keys}
        refused = negative | np.any([scores[k] > t[k] for k in keys], axis=0)
        if refused.mean() > target:
            break
        chosen = (q, t, refused)
    if chosen is None:
        raise DatasetError(f"no gate threshold keeps refusals at or under {target:.1%} of the validation knees: "
                           f"{int(negative.sum())} of {len(negative)} look like negatives (bone dark) or fail the "
                           "image checks; check the images, or allow more with --false-refusals")  # fmt: skip
    q, t, refused = chosen
    thresholds = Thresholds(distance=t["distance"], orientation=t["not_upright"], polarity=POLARITY_BOUNDARY)
    first = {"image": image}
    for key, over in (("distance", scores["distance"] > t["distance"]),
                      ("not_upright", scores["not_upright"] > t["not_upright"]), ("negative", negative)):  # fmt: skip
        first[key] = over & ~np.any(list(first.values()), axis=0)
    polarity = scores["negative"][~image]
    report = {"n": len(refused), "refused": int(refused.sum()), "false_refusal_rate": float(refused.mean()),
              "percentile": round(float(q), 2), "refused_by": {k: int(v.sum()) for k, v in first.items()},
              "negatives": int((negative & ~image).sum()),
              "polarity_scores": {"negatives_min": _rounded_min(polarity[polarity > POLARITY_BOUNDARY]),
                                  "others_max": _rounded_max(polarity[polarity <= POLARITY_BOUNDARY])}}  # fmt: skip
    return thresholds, report


def _rounded_min(x: np.ndarray) -> float | None:
    return round(float(x.min()), 2) if x.size else None


def _rounded_max(x: np.ndarray) -> float | None:
    return round(float(x.max()), 2) if x.size else None


def record_gate(model_dir: str | Path, block: dict) -> Path:
    """Write a fitted gate's block into the model directory's manifest (schema 2), re-record the
    self-test for it (the gate is part of the answer's contract; nothing else may have changed),
    check that the device accepts it, and re-render the model card."""
    from edge_infer.manifest import MANIFEST_FILE, SCHEMA_VERSION, load_manifest

    from .model_card import write_model_card
    from .selftest import record_self_test

    path = Path(model_dir) / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["gate"] = block
    data["schema_version"] = max(int(data.get("schema_version", 1)), SCHEMA_VERSION)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    load_manifest(model_dir)  # what we wrote must be what the device accepts
    record_self_test(model_dir, command=(data.get("self_test") or {}).get("command"), changed=("gate",))
    write_model_card(model_dir)
    return path


def fit_gate(model_dir: str | Path, train_dir: str | Path, val_dir: str | Path, n_fit: int = 1500,
             target: float = DEFAULT_TARGET, seed: int = 0, cache: dict | None = None) -> dict:  # fmt: skip
    """Fit the gate of every format of ``model_dir`` (each on its own features: quantisation moves
    them), write ``gate.npz`` there, and return the manifest's ``gate`` block (the caller writes
    it into the manifest, e.g. with :func:`record_gate`).

    Args:
        cache: If given, filled with each format's training features and validation scores
            (for measuring variants of the fit without running the models again).

    Raises:
        DatasetError: no usable training or validation images, or no threshold meets ``target``.
        KneeOAError: the model cannot be loaded.
    """
    from edge_infer.manifest import load_manifest

    model_dir = Path(model_dir)
    t0 = time.perf_counter()
    train, val = scan_class_folders(train_dir), scan_class_folders(val_dir)
    order = balanced_order(train.labels, n_fit, seed=seed)
    arrays, formats, fitted, left_out = {}, {}, 0, 0
    for fmt in load_manifest(model_dir).artifacts:
        with Classifier(model_dir, format=fmt, gate="off") as clf:
            feats, thumbs, ok = _training_features(clf, [train.paths[i] for i in order])
            if len(ok) < MIN_FIT_IMAGES:
                raise DatasetError(
                    f"{train_dir}: only {len(ok)} training images could be read; the gate needs {MIN_FIT_IMAGES}"
                )
            fmt_arrays, left_out = fit_without_negatives(feats, thumbs, train.labels[order][ok])
            fitted = len(ok) - left_out
            scores = validation_scores(clf, InputGate(fmt_arrays, Thresholds(np.inf, np.inf, np.inf)), val.paths)
        thresholds, report = set_thresholds(scores, target)
        arrays |= {f"{fmt}.{k}": v for k, v in fmt_arrays.items()}
        formats[fmt] = {"thresholds": thresholds.__dict__, "validation": report}
        if cache is not None:
            cache[fmt] = {"feats": feats, "thumbs": thumbs, "labels": train.labels[order][ok], "val_scores": scores}
        log.info("gate %s: %d of %d validation knees refused (%.1f%%)", fmt, report["refused"], report["n"],
                 100 * report["false_refusal_rate"])  # fmt: skip
    np.savez(model_dir / GATE_FILE, **arrays)
    return {
        "file": GATE_FILE,
        "sha256": sha256_file(model_dir / GATE_FILE),
        "method": METHOD,
        "orientations": list(ORIENTATIONS),
        "fitted_on": {
            "images": fitted,
            "source": str(train_dir),
            "seed": seed,
            "transforms": ["inverted", "rotated by +/-90 degrees", "upside down"],
            "left_out_as_stored_negatives": left_out,
        },
        "polarity_boundary": POLARITY_BOUNDARY,
        "shrinkage": SHRINKAGE,
        "target_false_refusal_rate": target,
        "validation_source": str(val_dir),
        "formats": formats,
        "seconds": round(time.perf_counter() - t0, 1),
    }
