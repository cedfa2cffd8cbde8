"""A manifest edited to a valid but different answer is caught at load by its self-test; a model
without one loads with a warning; ``kneeoa selftest`` records one without retraining."""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer import Classifier, default_model_dir
from edge_infer.errors import ModelContractError
from edge_infer.manifest import load_manifest
from edge_infer.selftest import CONTRACT, contract_digests, image_sha256, self_test_image

from synthetic import synthetic_knee

LITERT = importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime")
SHIPPED = [f for f in load_manifest(default_model_dir()).artifacts if "onnx" in f or LITERT]


@pytest.fixture
def model(tmp_path):
    return shutil.copytree(default_model_dir(), tmp_path / "model")


def _edit(model, change, redigest: bool = False) -> None:
    """Change the manifest; ``redigest`` also rewrites the self-test's contract digests, as a
    careless hand-edit might, so that only the recorded answer stands between the edit and use."""
    path = model / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    if redigest:
        data["self_test"]["contract"] = contract_digests(data)
    path.write_text(json.dumps(data))


def _answer(model, fmt):
    with Classifier(model, format=fmt, gate="off") as clf:
        return clf.predict(synthetic_knee(2, 128, seed=3), heatmap=False)


def test_the_shipped_model_carries_a_self_test_for_every_format_and_passes_it(caplog):
    m = load_manifest(default_model_dir())
    block = m.data["self_test"]
    assert set(block["formats"]) == set(m.artifacts)
    assert set(block["contract"]) == set(CONTRACT)
    for fmt in SHIPPED:
        entry = block["formats"][fmt]
        # the generator gives, here, the bytes recorded at conversion
        assert image_sha256(self_test_image(entry["input"]["size"], entry["input"]["seed"])) == entry["input"]["sha256"]
        p = sorted(entry["probabilities"].values())
        assert (
            min(b - a for a, b in itertools.pairwise(p)) > 2 * block["tolerance"]
        )  # any two classes swapped would show
        with caplog.at_level(logging.WARNING), Classifier(format=fmt, gate="off"):
            pass
    assert "self-test" not in caplog.text


def test_generated_image_is_deterministic_and_has_structure():
    a, b = self_test_image(128, 5), self_test_image(128, 5)
    assert a.dtype == np.uint8 and a.shape == (128, 128) and np.array_equal(a, b)
    assert not np.array_equal(a, self_test_image(128, 6))
    assert a.max() - a.min() > 64


@pytest.mark.parametrize(
    ("section", "change"),
    [
        ("screening", lambda d: d["screening"].update(threshold=0.6)),  # valid, and changes labels
        ("screening", lambda d: d["screening"].update(positive_classes=["KL3", "KL4"], rule="KL >= 3")),
        ("preprocess", lambda d: d["preprocess"].update(value_range=[0.0, 1.0])),
        ("preprocess", lambda d: d["preprocess"].update(intensity={"method": "percentile"})),
        ("gate", lambda d: d["gate"]["formats"]["onnx-int8"]["thresholds"].update(distance=1e12)),
        ("gradcam_head", lambda d: d["gradcam_head"].update(file="head2.npz")),
    ],
    ids=["threshold 0.6", "screening KL>=3", "value range", "intensity", "gate threshold", "head file"],
)
def test_a_valid_edit_that_changes_the_answer_is_refused(model, section, change):
    shutil.copy(model / "head.npz", model / "head2.npz")
    _edit(model, change)
    for fmt in SHIPPED:
        with pytest.raises(ModelContractError, match=rf"manifest\.json: self_test: {section} differs from the one"):
            Classifier(model, format=fmt, gate="off")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["preprocess"].update(value_range=[0.0, 1.0]),
        lambda d: d["preprocess"].update(value_range=[-1.0, 0.9]),
        lambda d: d["preprocess"].update(intensity={"method": "percentile", "low": 5.0, "high": 95.0}),
    ],
    ids=["value range 0..1", "value range -1..0.9", "intensity stretch"],
)
def test_the_recorded_answer_catches_what_the_digests_do_not(model, change):
    _edit(model, change, redigest=True)
    for fmt in SHIPPED:
        with pytest.raises(
            ModelContractError, match=rf"self_test: {fmt}: the self-test input gives P\(KL\d\) .* recorded"
        ):
            Classifier(model, format=fmt, gate="off")


def test_classes_renamed_consistently_are_still_caught(model):
    """A plain-class model (no KL grades) has no ordering rule; reversing its class names
    changes which probability is which, and the recorded answer says so."""

    def plain_and_reversed(d):
        d.update(kl_grades=None, screening=None)
        d["classes"] = ["e", "d", "c", "b", "a"]
        for artifact in d["artifacts"].values():  # no screening, so no refer band: uncalibrated
            artifact.pop("calibration", None)
        for entry in d["self_test"]["formats"].values():  # recorded as a, b, c, d, e
            entry.pop("calibration_sha256", None)
            entry["probabilities"] = dict(zip("abcde", entry["probabilities"].values(), strict=True))
            entry.update(kl_grade=None, oa_probability=None, top_class="a", label="a")

    _edit(model, plain_and_reversed, redigest=True)
    for fmt in SHIPPED:
        with pytest.raises(ModelContractError, match=rf"self_test: {fmt}: recorded for classes \['a', 'b', 'c', 'd', 'e'\]"):  # fmt: skip
            Classifier(model, format=fmt, gate="off")


def test_a_tampered_recorded_answer_is_refused(model):
    def swap(d):
        p = d["self_test"]["formats"]["onnx-int8"]["probabilities"]
        p["KL0"], p["KL1"] = p["KL1"], p["KL0"]

    _edit(model, swap)
    with pytest.raises(ModelContractError, match=r"self_test: onnx-int8: the self-test input gives P\(KL[01]\)"):
        Classifier(model, format="onnx-int8", gate="off")


def test_a_self_test_for_another_file_or_no_format_is_refused(model):
    _edit(model, lambda d: d["self_test"]["formats"]["onnx-int8"].update(artifact_sha256="0" * 64))
    with pytest.raises(ModelContractError, match=r"onnx-int8's self-test was recorded for another file"):
        Classifier(model, format="onnx-int8", gate="off")
    _edit(model, lambda d: d["self_test"]["formats"].pop("onnx-int8"))
    with pytest.raises(ModelContractError, match=r"self_test: no self-test for onnx-int8"):
        Classifier(model, format="onnx-int8", gate="off")


def test_a_model_without_a_self_test_loads_with_a_warning(model, caplog):
    _edit(model, lambda d: d.pop("self_test"))
    with caplog.at_level(logging.WARNING, logger="edge_infer"):
        answer = _answer(model, "onnx-int8")
    assert answer.probabilities == _answer(default_model_dir(), "onnx-int8").probabilities
    assert "has no self-test" in caplog.text and f"kneeoa selftest {model}" in caplog.text


def test_kneeoa_selftest_records_one_and_names_what_changed(model):
    from kneeoa.cli import main

    original = json.loads((model / "manifest.json").read_text())
    gate_bytes = (model / "gate.npz").read_bytes()
    _edit(model, lambda d: d.pop("self_test"))
    result = CliRunner().invoke(main, ["selftest", str(model)])
    assert result.exit_code == 0, result.output
    assert "onnx-int8: seed " in result.output and "top KL" in result.output
    rewritten = json.loads((model / "manifest.json").read_text())
    assert rewritten["self_test"]["formats"] == original["self_test"]["formats"]  # the shipped one is reproducible
    assert {k: v for k, v in rewritten.items() if k != "self_test"} == {
        k: v for k, v in original.items() if k != "self_test"
    }
    assert (model / "gate.npz").read_bytes() == gate_bytes
    # a deliberate edit, then re-recorded: the command says which section it blessed, and it loads
    _edit(model, lambda d: d["screening"].update(threshold=0.6))
    result = CliRunner().invoke(main, ["selftest", str(model)])
    assert result.exit_code == 0 and "contract sections recorded anew: screening" in result.output
    assert _answer(model, "onnx-int8").label in ("Normal", "Osteoarthritis")


def test_recording_for_the_gate_refuses_an_edit_elsewhere(model):
    from kneeoa_convert.errors import ConvertError
    from kneeoa_convert.selftest import record_self_test

    _edit(model, lambda d: d["screening"].update(threshold=0.6))
    with pytest.raises(ConvertError, match=r"manifest\.json: screening changed since its self-test was recorded"):
        record_self_test(model, changed=("gate",))
