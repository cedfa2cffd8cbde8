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
from edge_infer.labels import REFER_LABEL
from edge_infer.metrics import (
    ECE_BINS,
    classification_summary,
    expected_calibration_error,
    figure,
    json_safe,
    negative_log_likelihood,
    reliability_table,
    roc_curve,
    screening_at_threshold,
)
from edge_infer.screening import Screening

from .plots import confusion_matrix_png, reliability_png, roc_png

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.png"
ROC_FILE = "roc.png"
RELIABILITY_FILE = "reliability.png"


def evaluate(
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    format: str | None = None,
    threads: int | None = None,
    on_result: Callable[[int, int, Path, str | None], None] | None = None,
    ood_dir: str | Path | None = None,
    gate: str = "enforce",
) -> dict:
    """Score every image under ``data_dir/<class>/`` with :class:`Classifier`.

    Args:
        data_dir: Folder with one sub-folder per class, named like the training folders (``0``..``4``).
        model_dir: Model directory; default the shipped model.
        format: Format name; default the manifest's.
        threads: Inference threads.
        on_result: Called after each image with ``(done, total, path, error or None)`` (progress).
        ood_dir: A folder of images that are not knee crops (sub-folders are categories): report
            how many the input gate refuses.
        gate: The classifier's gate mode; ``report`` scores every knee, refused or not.

    Returns:
        A JSON-ready dict: ``model``, ``format``, ``data``, ``n``, ``failed`` (``{input, error}``
        records), ``refused`` (``{input, reason, check}``: the gate's false refusals),
        ``summary`` (the figures, of the knees graded), ``predictions`` (one record per graded
        image) and, with ``ood_dir``, ``ood`` (refusals per category).

    Raises:
        DatasetError: no dataset there, or its classes are not the model's.
        KneeOAError: the model cannot be loaded.
    """
    data_dir = Path(data_dir)
    t0 = time.perf_counter()
    with Classifier(model_dir, format=format, threads=threads, gate=gate) as clf:
        m = clf.manifest
        ds = scan_class_folders(data_dir)
        if ds.classes != m.classes:
            raise DatasetError(
                f"{data_dir}: class folders {ds.folders} give classes {ds.classes}; the model {m.name} has {m.classes}"
            )
        labels, probs, predictions, failed, refused = _score(clf, ds, on_result)
        ood = ood_refusals(clf, Path(ood_dir)) if ood_dir else None
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
            "refused": refused,
            "gate": {
                "mode": gate,
                "refused": len(refused),
                "false_refusal_rate": len(refused) / max(len(ds) - len(failed), 1),
            },
            "ood": ood,
            "summary": summarize(y, p, m.classes, m.screening, [r["label"] for r in predictions]),
            "predictions": predictions,
        }
    )


def _score(clf: Classifier, ds: FolderDataset, on_result) -> tuple[list, list, list, list, list]:
    """Every image of ``ds`` through the batch engine: labels and probabilities of those graded,
    a prediction record each, the failures and the refusals."""
    m = clf.manifest
    labels, probs, predictions, failed, refused = [], [], [], [], []
    batch = clf.predict_many(ds.paths, heatmap=False)  # decodes ahead; results in input order
    with contextlib.closing(batch):  # Ctrl-C or a failing callback stops the decoding thread too
        for i, (result, label) in enumerate(zip(batch, ds.labels, strict=True)):
            path, pred = result.item, result.prediction
            if result.refusal or (pred is not None and pred.gate.startswith("forced")):  # refused, or would be
                verdict = getattr(result.exception, "verdict", None)
                reason = result.refusal or pred.gate.removeprefix("forced: ")
                refused.append({"input": str(path), "reason": reason, "check": getattr(verdict, "check", None)})
            if result.status == "failed":  # one file never stops the evaluation
                failed.append({"input": str(path), "error": result.error})
            elif result.ok:  # a refused knee has no grade to score
                labels.append(int(label))
                probs.append([pred.probabilities[c] for c in m.classes])
                predictions.append(
                    {
                        "input": str(path),
                        "true": m.classes[label],
                        "predicted": m.classes[pred.class_index],
                        "label": pred.label,
                        "oa_probability": pred.oa_probability,
                        "probabilities": pred.probabilities,
                    }
                )
            if on_result:
                on_result(i + 1, len(ds.paths), path, result.error)
    return labels, probs, predictions, failed, refused


def ood_refusals(clf: Classifier, folder: Path) -> dict:
    """Run every image under ``folder`` (not knee crops) and count what the gate refuses, per
    category (the first sub-folder under ``folder``). Unreadable files count as refused: they
    are never graded either."""
    from edge_infer.batch import expand_inputs

    by: dict[str, dict] = {}
    accepted = []
    with contextlib.closing(clf.predict_many(expand_inputs([folder]), heatmap=False)) as batch:
        for result in batch:
            rel = (
                Path(result.source).relative_to(folder)
                if Path(result.source).is_relative_to(folder)
                else Path(result.source)
            )
            category = rel.parts[0] if len(rel.parts) > 1 else "."
            entry = by.setdefault(category, {"n": 0, "refused": 0})
            entry["n"] += 1
            graded = result.ok and not result.prediction.gate.startswith("forced")
            entry["refused"] += int(not graded)
            if graded:
                accepted.append({"input": result.source, "label": result.prediction.label})
    n, refused = sum(e["n"] for e in by.values()), sum(e["refused"] for e in by.values())
    return {"folder": str(folder), "n": n, "refused": refused, "refusal_rate": refused / max(n, 1),
            "by_category": dict(sorted(by.items())), "accepted": accepted}  # fmt: skip


def summarize(
    y: np.ndarray, p: np.ndarray, classes: list[str], screening: Screening | None, labels: list[str] | None = None
) -> dict:
    """The figures of probabilities ``p`` against true classes ``y``: calibration (ECE, NLL, the
    reliability diagram's bins); for a screening model also its AUC, ROC curve, the calls at its
    threshold and, from the screening ``labels`` the device gave, the three results (Normal,
    Osteoarthritis, Refer) with the sensitivity and specificity of the knees it called."""
    summary = classification_summary(y, p, screening) if len(y) else {"n": 0}
    summary["classes"] = classes
    if len(y):
        summary["calibration"] = {"ece": expected_calibration_error(p, y), "nll": negative_log_likelihood(p, y),
                                  "bins": ECE_BINS, "reliability": reliability_table(p, y)}  # fmt: skip
    if screening and len(y):
        positive = np.isin(y, screening.positive_indices)
        score = screening.score(p)
        fpr, tpr, thresholds = roc_curve(positive, score)
        summary["screening"] = {
            "positive_classes": list(screening.positive_classes),
            "auc": summary.pop("screening_auc"),
            **screening_at_threshold(positive, score, screening.threshold),
            "results": three_way(positive, labels, screening) if labels is not None else None,
            "roc": {
                "fpr": fpr.tolist(),
                "tpr": tpr.tolist(),
                "thresholds": [None if not np.isfinite(t) else t for t in thresholds],
            },
        }
    return summary


def three_way(positive: np.ndarray, labels: list[str], screening: Screening) -> dict:
    """Counts of each screening result, the referral rate, and the sensitivity and specificity
    of the knees called Normal or Osteoarthritis (the referred ones left to a clinician)."""
    lab = np.asarray(labels)
    called_pos, called_neg = lab == screening.positive_label, lab == screening.negative_label
    tp, fn = int(np.sum(called_pos & positive)), int(np.sum(called_neg & positive))
    tn, fp = int(np.sum(called_neg & ~positive)), int(np.sum(called_pos & ~positive))
    counts = {
        name: int(np.sum(lab == name)) for name in (screening.negative_label, screening.positive_label, REFER_LABEL)
    }
    return {"counts": counts, "referral_rate": counts[REFER_LABEL] / max(len(lab), 1),
            "called_sensitivity": tp / (tp + fn) if tp + fn else None,
            "called_specificity": tn / (tn + fp) if tn + fp else None}  # fmt: skip


def report(result: dict) -> str:
    """A readable table of an :func:`evaluate` result."""
    s = result["summary"]
    lines = [
        f"model {result['model']} ({result['format']}) on {result['data']}: "
        f"{s['n']} images scored, {len(result['failed'])} failed"
    ]
    g = result.get("gate") or {}
    lines.append(f"  input gate ({g.get('mode', 'enforce')}): {g.get('refused', 0)} knees refused "
                 f"(false refusal rate {_f(g.get('false_refusal_rate'))})")  # fmt: skip
    ood = result.get("ood")
    if ood:
        cats = ", ".join(f"{c} {e['refused']}/{e['n']}" for c, e in ood["by_category"].items())
        lines.append(f"  out of distribution ({ood['folder']}): {ood['refused']} of {ood['n']} refused "
                     f"({_f(ood['refusal_rate'])}): {cats}")  # fmt: skip
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
        three = sc.get("results")
        if three:
            counts = "   ".join(f"{k} {v}" for k, v in three["counts"].items())
            lines.append(f"  screening results: {counts}   referred {_f(three['referral_rate'])}   "
                         f"of those called: sensitivity {_f(three['called_sensitivity'])}   "
                         f"specificity {_f(three['called_specificity'])}")  # fmt: skip
    cal = s.get("calibration")
    if cal:
        lines.append(f"  calibration: ECE {_f(cal['ece'])} ({cal['bins']} bins)   NLL {_f(cal['nll'])}")
    classes = s["classes"]
    width = max(6, *(len(c) + 1 for c in classes))
    lines.append("  " + "true \\ predicted".ljust(18) + "".join(c.rjust(width) for c in classes) + "recall".rjust(9))
    for name, row, rec in zip(classes, s["confusion_matrix"], s["recall_per_class"], strict=True):
        recall = _f(rec)
        lines.append("  " + name.ljust(18) + "".join(str(v).rjust(width) for v in row) + recall.rjust(9))
    return "\n".join(lines)


_f = figure


def write_outputs(result: dict, out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``predictions.csv``, ``confusion_matrix.png``, ``reliability.png`` and
    (screening) ``roc.png``."""
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
    written.append(reliability_png(s["calibration"]["reliability"], s["calibration"]["ece"], out / RELIABILITY_FILE,
                                   "Reliability: accuracy against confidence", subtitle))  # fmt: skip
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
