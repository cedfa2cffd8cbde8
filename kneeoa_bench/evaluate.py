"""Evaluate a shipped model exactly as the device runs it: the edge runtime (no TensorFlow) over a
folder with one sub-folder per class.

Figures: 5-class accuracy, balanced accuracy, quadratic weighted kappa, mean absolute error in
grades, per-class recall, the confusion matrix; for screening models (KL ≥ 2), ROC AUC and
sensitivity/specificity at the manifest's operating threshold.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_infer.classifier import Classifier
from edge_infer.errors import DatasetError
from edge_infer.folders import FolderDataset, scan_class_folders
from edge_infer.metrics import classification_summary, figure, json_safe, roc_curve, screening_at_threshold
from edge_infer.screening import Screening

from .plots import confusion_matrix_png, roc_png

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.png"
ROC_FILE = "roc.png"


def evaluate(
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    format: str | None = None,
    threads: int | None = None,
    on_result: Callable[[int, int, Path, str | None], None] | None = None,
) -> dict:
    """Score every image under ``data_dir/<class>/`` with :class:`Classifier`.

    Args:
        data_dir: Folder with one sub-folder per class, named like the training folders (``0``..``4``).
        model_dir: Model directory; default the shipped model.
        format: Format name; default the manifest's.
        threads: Inference threads.
        on_result: Called after each image with ``(done, total, path, error or None)`` (progress).

    Returns:
        A JSON-ready dict: ``model``, ``format``, ``data``, ``n``, ``failed`` (``{input, error}``
        records), ``summary`` (the figures) and ``predictions`` (one record per scored image).

    Raises:
        DatasetError: no dataset there, or its classes are not the model's.
        KneeOAError: the model cannot be loaded.
    """
    data_dir = Path(data_dir)
    t0 = time.perf_counter()
    with Classifier(model_dir, format=format, threads=threads) as clf:
        m = clf.manifest
        ds = scan_class_folders(data_dir)
        if ds.classes != m.classes:
            raise DatasetError(
                f"{data_dir}: class folders {ds.folders} give classes {ds.classes}; the model {m.name} has {m.classes}"
            )
        labels, probs, predictions, failed = _score(clf, ds, on_result)
        fmt = clf.format
    y = np.asarray(labels, np.int64)
    p = np.asarray(probs, np.float64).reshape(len(labels), len(m.classes))
    return json_safe(
        {
            "model": m.name,
            "model_dir": str(m.model_dir),
            "format": fmt,
            "data": str(data_dir),
            "n": len(ds.paths),
            "seconds": round(time.perf_counter() - t0, 2),
            "failed": failed,
            "summary": summarize(y, p, m.classes, m.screening),
            "predictions": predictions,
        }
    )


def _score(clf: Classifier, ds: FolderDataset, on_result) -> tuple[list, list, list, list]:
    """Every image of ``ds`` through the batch engine: labels and probabilities of those scored,
    a prediction record each, and the failures."""
    m = clf.manifest
    labels, probs, predictions, failed = [], [], [], []
    batch = clf.predict_many(ds.paths, heatmap=False)  # decodes ahead; results in input order
    with contextlib.closing(batch):  # Ctrl-C or a failing callback stops the decoding thread too
        for i, (result, label) in enumerate(zip(batch, ds.labels, strict=True)):
            path, pred = result.item, result.prediction
            if not result.ok:  # one file never stops the evaluation
                failed.append({"input": str(path), "error": result.error})
            else:
                labels.append(int(label))
                probs.append([pred.probabilities[c] for c in m.classes])
                predictions.append(
                    {
                        "input": str(path),
                        "true": m.classes[label],
                        "predicted": m.classes[pred.class_index],
                        "oa_probability": pred.oa_probability,
                        "probabilities": pred.probabilities,
                    }
                )
            if on_result:
                on_result(i + 1, len(ds.paths), path, result.error)
    return labels, probs, predictions, failed


def summarize(y: np.ndarray, p: np.ndarray, classes: list[str], screening: Screening | None) -> dict:
    """The figures of probabilities ``p`` against true classes ``y``; for a screening model also
    its AUC, ROC curve, and the calls at its threshold."""
    summary = classification_summary(y, p, screening) if len(y) else {"n": 0}
    summary["classes"] = classes
    if screening and len(y):
        positive = np.isin(y, screening.positive_indices)
        score = screening.score(p)
        fpr, tpr, thresholds = roc_curve(positive, score)
        summary["screening"] = {
            "positive_classes": list(screening.positive_classes),
            "auc": summary.pop("screening_auc"),
            **screening_at_threshold(positive, score, screening.threshold),
            "roc": {
                "fpr": fpr.tolist(),
                "tpr": tpr.tolist(),
                "thresholds": [None if not np.isfinite(t) else t for t in thresholds],
            },
        }
    return summary


def report(result: dict) -> str:
    """A readable table of an :func:`evaluate` result."""
    s = result["summary"]
    lines = [
        f"model {result['model']} ({result['format']}) on {result['data']}: "
        f"{s['n']} images scored, {len(result['failed'])} failed"
    ]
    if not s["n"]:
        return "\n".join(lines)
    lines.append(
        f"  accuracy {_f(s['accuracy'])}   balanced accuracy {_f(s['balanced_accuracy'])}   "
        f"quadratic weighted kappa {_f(s['quadratic_weighted_kappa'])}   MAE {_f(s['mean_absolute_error'])}"
    )
    sc = s.get("screening")
    if sc:
        lines.append(
            f"  screening {'+'.join(sc['positive_classes'])} at P ≥ {sc['threshold']:.2f}: AUC {_f(sc['auc'])}   "
            f"sensitivity {_f(sc['sensitivity'])}   specificity {_f(sc['specificity'])}   "
            f"PPV {_f(sc['positive_predictive_value'])}   NPV {_f(sc['negative_predictive_value'])}"
        )
    classes = s["classes"]
    width = max(6, *(len(c) + 1 for c in classes))
    lines.append("  " + "true \\ predicted".ljust(18) + "".join(c.rjust(width) for c in classes) + "recall".rjust(9))
    for name, row, rec in zip(classes, s["confusion_matrix"], s["recall_per_class"], strict=True):
        recall = _f(rec)
        lines.append("  " + name.ljust(18) + "".join(str(v).rjust(width) for v in row) + recall.rjust(9))
    return "\n".join(lines)


_f = figure


def write_outputs(result: dict, out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``predictions.csv``, ``confusion_matrix.png`` and (screening) ``roc.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / EVALUATION_FILE]
    written[0].write_text(json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
    s = result["summary"]
    classes = s["classes"]
    with open(out / PREDICTIONS_FILE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["input", "true", "predicted", "oa_probability", *classes])
        for r in result["predictions"]:
            oa = "" if r["oa_probability"] is None else f"{r['oa_probability']:.6f}"
            w.writerow([r["input"], r["true"], r["predicted"], oa, *(f"{r['probabilities'][c]:.6f}" for c in classes)])
    written.append(out / PREDICTIONS_FILE)
    if not s["n"]:
        return written
    subtitle = f"{result['model']} ({result['format']}), n={s['n']}"
    written.append(
        confusion_matrix_png(
            s["confusion_matrix"],
            classes,
            out / CONFUSION_FILE,
            f"Confusion matrix: accuracy {s['accuracy']:.3f}, QWK {s['quadratic_weighted_kappa']:.3f}",
            subtitle,
        )
    )
    sc = s.get("screening")
    if sc and sc["auc"] is not None and sc["sensitivity"] is not None and sc["specificity"] is not None:
        operating = (1.0 - sc["specificity"], sc["sensitivity"])
        label = f"P(OA) >= {sc['threshold']:.2f}: sens {sc['sensitivity']:.2f}, spec {sc['specificity']:.2f}"
        written.append(
            roc_png(
                np.asarray(sc["roc"]["fpr"]),
                np.asarray(sc["roc"]["tpr"]),
                sc["auc"],
                operating,
                out / ROC_FILE,
                f"Screening ROC: {' + '.join(sc['positive_classes'])} vs the rest",
                subtitle,
                label,
            )
        )
    return written
