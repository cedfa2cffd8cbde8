"""Saying when it is unsure: temperature scaling, the expected calibration error and the Refer band,
fitted on synthetic data with a known answer, and applied by the device from the manifest."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_infer.calibration import Calibration
from edge_infer.classifier import Classifier, default_model_dir
from edge_infer.errors import ManifestError, ModelContractError
from edge_infer.manifest import load_manifest
from edge_infer.metrics import expected_calibration_error, negative_log_likelihood
from edge_infer.screening import Screening
from kneeoa_convert.selftest import record_self_test
from kneeoa_convert.uncertainty import fit_format, fit_refer_band, fit_temperature

CLASSES = ("KL0", "KL1", "KL2", "KL3", "KL4")
SCREENING = Screening(CLASSES, ("KL2", "KL3", "KL4"), 0.5)
EXAMPLES = sorted((default_model_dir().parent.parent / "examples").glob("*.png"))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _overconfident(n: int = 4000, temperature: float = 2.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports softmax(z * temperature): overconfident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 5))
    truth = _softmax(z)
    labels = np.array([rng.choice(5, p=p) for p in truth])
    return _softmax(z * temperature), labels


def test_temperature_scaling_recovers_the_overconfidence_and_lowers_the_ece():
    probs, labels = _overconfident(temperature=2.0)
    t = fit_temperature(probs, labels)
    assert t == pytest.approx(2.0, rel=0.08)
    calibrated = Calibration(t).apply(probs)
    assert (calibrated.argmax(1) == probs.argmax(1)).all()  # the KL grade never changes
    assert np.allclose(calibrated.sum(1), 1.0)
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(probs, labels) / 2
    assert negative_log_likelihood(calibrated, labels) < negative_log_likelihood(probs, labels)


def _brute_force_referral(scores, positive, threshold, sens, spec):
    best = 1.0
    for low in np.unique(np.concatenate([scores[scores <= threshold], [threshold]])):
        for high in np.unique(np.concatenate([scores[scores > threshold] + 1e-9, [threshold]])):
            below, above = scores < low, scores >= high
            tp, fn = np.sum(above & positive), np.sum(below & positive)
            tn, fp = np.sum(below & ~positive), np.sum(above & ~positive)
            if tp + fn and tn + fp and tp / (tp + fn) >= sens and tn / (tn + fp) >= spec:
                best = min(best, 1 - (below.sum() + above.sum()) / len(scores))
    return best


def test_the_refer_band_is_the_narrowest_that_reaches_both_targets():
    rng = np.random.default_rng(1)
    positive = rng.random(150) < 0.4
    scores = np.clip(np.where(positive, 0.65, 0.3) + rng.normal(0, 0.2, 150), 0, 1)
    (low, high), figures = fit_refer_band(scores, positive, 0.5, 0.9, 0.9)
    assert low <= 0.5 <= high and figures["reached"]
    called = (scores < low) | (scores >= high)
    tp, fn = np.sum((scores >= high) & positive), np.sum((scores < low) & positive)
    tn, fp = np.sum((scores < low) & ~positive), np.sum((scores >= high) & ~positive)
    assert tp / (tp + fn) >= 0.9 and tn / (tn + fp) >= 0.9
    assert figures["referral_rate"] == pytest.approx(1 - called.mean(), abs=1e-4)
    assert figures["referral_rate"] == pytest.approx(_brute_force_referral(scores, positive, 0.5, 0.9, 0.9), abs=1e-4)


def test_unreachable_targets_refer_everything():
    scores, positive = np.array([0.4, 0.6, 0.4, 0.6]), np.array([True, False, False, True])
    band, figures = fit_refer_band(scores, positive, 0.5, 0.99, 0.99)
    assert band == (0.0, 1.0) and not figures["reached"] and figures["referral_rate"] == 1.0


def test_a_fitted_format_records_its_figures():
    probs, labels = _overconfident(n=1500, temperature=1.6, seed=2)
    cal = fit_format(probs, labels, SCREENING, 0.9, 0.9)
    block = cal.to_dict()
    assert block["ece_after"] < block["ece_before"] and block["n"] == 1500
    assert Calibration.from_dict(json.loads(json.dumps(block))) == cal


@pytest.mark.parametrize(
    "block, message",
    [
        ({"temperature": "NaN"}, "calibration.temperature"),
        ({"temperature": 0}, "calibration.temperature"),
        ({"temperature": 1.0, "refer_band": [0.7, 0.2]}, "low 0.7 is above high 0.2"),
        ({"temperature": 1.0, "refer_band": [0.6, 0.9]}, "does not hold the screening threshold"),
        ({"temperature": 1.0, "refer_band": [0.1]}, "calibration.refer_band"),
        ({"refer_band": None}, "calibration.temperature"),
    ],
)
def test_an_invalid_calibration_block_is_refused_at_load(tmp_path, block, message):
    model = shutil.copytree(default_model_dir(), tmp_path / "model")
    data = json.loads((model / "manifest.json").read_text())
    fmt = data["default_format"]
    data["artifacts"][fmt]["calibration"] = block
    (model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        load_manifest(model)


def test_the_calibration_checks_its_own_values():
    with pytest.raises(ValueError, match="finite"):
        Calibration(float("nan"))
    with pytest.raises(ValueError, match="low <= high"):
        Calibration(1.0, (0.7, 0.2))
    with pytest.raises(ValueError, match="does not hold the screening threshold"):
        Calibration(1.0, (0.6, 0.9)).check_against(SCREENING)


def test_the_device_applies_the_manifests_calibration(tmp_path):
    model = shutil.copytree(default_model_dir(), tmp_path / "model")
    with Classifier(model, calibrate=False) as clf:
        raw = [clf.predict(p, heatmap=False) for p in EXAMPLES]
        fmt = clf.format
    data = json.loads((model / "manifest.json").read_text())
    data["artifacts"][fmt]["calibration"] = {"temperature": 2.0, "refer_band": [0.0, 1.0]}
    (model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelContractError, match="calibration differs"):  # an edit the self-test catches
        Classifier(model)
    record_self_test(model, changed=())  # the deliberate edit, re-recorded
    with Classifier(model) as clf:
        calibrated = [clf.predict(p, heatmap=False) for p in EXAMPLES]
    for before, after in zip(raw, calibrated, strict=True):
        assert after.label == "Refer" and after.kl_grade == before.kl_grade
        p = np.array(list(before.probabilities.values())) ** 0.5
        assert np.allclose(list(after.probabilities.values()), p / p.sum())


def test_convert_calibrates_every_format_on_the_validation_knees(model_dir):
    manifest = load_manifest(model_dir)
    for fmt, artifact in manifest.artifacts.items():
        block = artifact.info["calibration"]
        assert block["n"] > 0 and block["fitted_on"].endswith("val") and "ece_after" in block, fmt
        with Classifier(model_dir, format=fmt) as clf:
            assert clf.calibration.temperature == block["temperature"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert "## Calibration and referral" in card and "temperature scaling" in card
