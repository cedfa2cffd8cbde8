"""The shipped default model: intact, runnable on the edge runtime, and as good on real validation
knees as its manifest says (when ../shared/data/kneeKL224 is present)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer import Classifier, default_model_dir
from edge_infer.manifest import load_manifest
from conftest import REAL_DATA

FLOOR_MARGIN = 0.02  # the shipped figure may drift by rounding/threading, not by more


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(default_model_dir())


def test_default_model_is_complete_and_cites_its_data(manifest):
    assert manifest.kl_grades == [0, 1, 2, 3, 4]
    assert manifest.screening["positive_classes"] == ["KL2", "KL3", "KL4"]
    engines = {art.format.engine.value for art in manifest.artifacts.values()}
    assert engines == {"onnxruntime", "litert"}  # an ONNX and a TFLite format ship
    assert all("int8" in art.format.precision for art in manifest.artifacts.values())  # int8 only in git
    for name in manifest.artifacts:
        path = manifest.artifact_path(name)  # exists and matches its sha256
        assert path.stat().st_size < 25 * 2**20
    assert "10.17632/56rmx5bjcr.1" in manifest.data["training"]["data_citation"]
    assert (manifest.model_dir / "MODEL_CARD.md").is_file()


SHIPPED = list(load_manifest(default_model_dir()).artifacts)


@pytest.mark.parametrize("fmt", SHIPPED)
def test_default_model_runs(manifest, knee_png, fmt):
    with Classifier(format=fmt) as clf:
        pred = clf.predict(knee_png)
    assert pred.kl_grade in range(5) and pred.label in ("Normal", "Osteoarthritis")


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", SHIPPED)
def test_default_model_holds_its_validation_accuracy(manifest, fmt):
    """Every val knee through exactly what ships; the manifest's recorded accuracy is the floor."""
    recorded = manifest.artifacts[fmt].info["parity_vs_keras"]
    labels, preds = [], []
    with Classifier(format=fmt) as clf:
        for grade in range(5):
            for path in sorted((REAL_DATA / "val" / str(grade)).glob("*.png")):
                preds.append(clf.predict(path).kl_grade)
                labels.append(grade)
    accuracy = float(np.mean(np.asarray(preds) == np.asarray(labels)))
    assert len(labels) == recorded["n"]
    assert accuracy >= recorded["accuracy"] - FLOOR_MARGIN
