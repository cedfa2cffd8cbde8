"""The device refuses a model directory that is not what its manifest says."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from edge_infer import Classifier
from edge_infer.errors import ManifestError, ModelContractError, RuntimeUnavailableError
from edge_infer.manifest import load_manifest


@pytest.fixture
def model_copy(model_dir, tmp_path):
    return shutil.copytree(model_dir, tmp_path / "model")


def _edit_manifest(model_copy, change):
    path = model_copy / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_corrupt_artifact_is_refused(model_copy):
    with open(model_copy / "model.int8.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match=r"model\.int8\.onnx: sha256 .* does not match"):
        Classifier(model_copy, format="onnx-int8")


def test_missing_manifest_and_bad_json(model_copy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match=r"manifest\.json: not found"):
        load_manifest(empty)
    (model_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(model_copy)


def test_input_size_mismatch_says_expected_and_got(model_copy):
    _edit_manifest(model_copy, lambda d: d["preprocess"].update(size=99))
    with pytest.raises(ModelContractError, match=r"expected shape \(None, 99, 99, 3\), got"):
        Classifier(model_copy, format="onnx-fp32")
    with pytest.raises(ModelContractError, match=r"expected shape \(None, 99, 99, 3\), got"):
        Classifier(model_copy, format="tflite-fp32")


def test_wrong_output_name_is_refused(model_copy):
    _edit_manifest(model_copy, lambda d: d["outputs"]["features"].update(name="mixed10"))
    with pytest.raises(ModelContractError, match="expected an output named 'mixed10'"):
        Classifier(model_copy, format="onnx-int8")


def test_format_not_shipped(model_copy):
    _edit_manifest(model_copy, lambda d: d["artifacts"].pop("tflite-fp16"))
    with pytest.raises(ManifestError, match="no 'tflite-fp16' model here"):
        Classifier(model_copy, format="tflite-fp16")


def test_missing_litert_names_the_extra(model_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("ai_edge_litert", "tflite_runtime") else real(name, *a),
    )
    with pytest.raises(RuntimeUnavailableError, match=r'pip install "kneeoa\[tflite\]"'):
        Classifier(model_dir, format="tflite-int8")


def test_default_format_falls_back_to_an_installed_engine(model_copy, monkeypatch):
    _edit_manifest(model_copy, lambda d: d.update(default_format="tflite-int8"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("ai_edge_litert", "tflite_runtime") else real(name, *a),
    )
    with Classifier(model_copy) as clf:
        assert clf.format == "onnx-fp32"
