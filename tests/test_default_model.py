"""The shipped default model: intact, runnable on the edge runtime, and as good on real validation
knees as its manifest says (when ../shared/data/kneeKL224 is present)."""

from __future__ import annotations

import pytest

from edge_infer import Classifier, default_model_dir
from edge_infer.manifest import load_manifest

from realdata import REAL_DATA

FLOOR_MARGIN = 0.02  # the shipped figure may drift by rounding/threading, not by more


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(default_model_dir())


def test_default_model_is_complete_and_cites_its_data(manifest):
    assert manifest.kl_grades == [0, 1, 2, 3, 4]
    assert manifest.screening.positive_classes == ("KL2", "KL3", "KL4")
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
def test_default_model_holds_its_validation_figures(manifest, fmt):
    """Every val knee through exactly what ships (`kneeoa evaluate`); the figures recorded in the
    manifest when it shipped are the floor."""
    from kneeoa_bench.evaluate import evaluate

    recorded = manifest.artifacts[fmt].info["parity_vs_keras"]
    result = evaluate(REAL_DATA / "val", format=fmt)
    s = result["summary"]
    assert not result["failed"] and s["n"] == recorded["n"]
    assert s["accuracy"] >= recorded["accuracy"] - FLOOR_MARGIN
    assert s["quadratic_weighted_kappa"] >= recorded["quadratic_weighted_kappa"] - FLOOR_MARGIN
    assert s["screening"]["auc"] >= recorded["screening_auc"] - FLOOR_MARGIN
