"""``kneeoa evaluate``: the shipped formats over a labelled folder, with figures, plots and failures."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_infer import Classifier
from kneeoa.cli import main as kneeoa


@pytest.fixture
def val_with_a_broken_file(knee_dataset, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(knee_dataset / "val", val)
    (val / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return val


@pytest.mark.parametrize("fmt", ["onnx-int8", "tflite-fp32"])
def test_evaluate_scores_every_image_and_reports_the_broken_one(model_dir, val_with_a_broken_file, tmp_path, fmt):
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        kneeoa,
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--format",
            fmt,
            "--json",
            "--out",
            str(out),
            str(val_with_a_broken_file),
        ],
    )
    assert result.exit_code == 1  # one file failed
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == fmt and report["n"] == 21 and len(report["failed"]) == 1
    s = report["summary"]
    assert s["n"] == 20 and np.asarray(s["confusion_matrix"]).sum() == 20

    # The figures follow from the per-image predictions, which are what edge-infer gives each file.
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20
    with Classifier(model_dir, format=fmt) as clf:
        for row in rows[::4]:
            pred = clf.predict(row["input"], heatmap=False)
            assert row["predicted"] == clf.manifest.classes[pred.class_index]
            assert float(row["oa_probability"]) == pytest.approx(pred.oa_probability, abs=1e-6)
    assert s["accuracy"] == pytest.approx(np.mean([r["true"] == r["predicted"] for r in rows]))
    sc = s["screening"]
    positive = np.array([r["true"] in ("KL2", "KL3", "KL4") for r in rows])
    called = np.array([float(r["oa_probability"]) >= 0.5 for r in rows])
    assert sc["sensitivity"] == pytest.approx((called & positive).sum() / positive.sum())
    assert sc["specificity"] == pytest.approx((~called & ~positive).sum() / (~positive).sum())
    for png in ("confusion_matrix.png", "roc.png"):
        with Image.open(out / png) as im:
            assert im.width > 300 and im.height > 300
    assert json.loads((out / "evaluation.json").read_text())["summary"]["n"] == 20


def test_evaluate_table_and_class_mismatch(model_dir, knee_dataset, tmp_path):
    result = CliRunner().invoke(kneeoa, ["evaluate", "--model", str(model_dir), str(knee_dataset / "val")])
    assert result.exit_code == 0, result.output
    assert "quadratic weighted kappa" in result.stdout and "true \\ predicted" in result.stdout
    assert "20 images scored, 0 failed" in result.stdout

    other = tmp_path / "other"
    for name in ("cats", "dogs"):
        (other / name).mkdir(parents=True)
        shutil.copy(next((knee_dataset / "val" / "0").glob("*.png")), other / name / "x.png")
    result = CliRunner().invoke(kneeoa, ["evaluate", "--model", str(model_dir), str(other)])
    assert result.exit_code == 1
    assert "give classes ['cats', 'dogs']" in result.stderr and "Traceback" not in result.output
