"""Train a few real steps → convert to every format → classify on the edge runtime → JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer import Classifier
from edge_infer.cli import main as edge_infer
from edge_infer.decode import load_grayscale
from edge_infer.formats import FORMAT_NAMES
from edge_infer.manifest import load_manifest
from edge_infer.preprocess import prepare_gray, to_model_input


def test_training_writes_its_run_files(trained_run):
    run = trained_run.parent
    for name in ("model.keras", "config.json", "metrics.json", "epochs.jsonl", "history.csv"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == ["KL0", "KL1", "KL2", "KL3", "KL4"]
    assert config["screening"]["positive_classes"] == ["KL2", "KL3", "KL4"]
    assert len((run / "epochs.jsonl").read_text().splitlines()) == 2
    assert not (run / "backup").exists()  # resume state is cleared once training completes


def test_manifest_describes_every_format(model_dir):
    m = load_manifest(model_dir)
    assert list(m.artifacts) == list(FORMAT_NAMES)
    assert m.default_format == "onnx-int8"
    assert m.preprocess.size == 75
    assert m.feature_shape[2] == 768  # mixed5 has 768 channels
    for name, art in m.artifacts.items():
        parity = art.info["parity_vs_keras"]
        assert parity["n"] == 10
        assert len(art.sha256) == 64
        m.artifact_path(name)  # checksum verifies
    assert len(m.data["agreement_between_formats"]) == 15  # every pair of the six
    assert m.data["agreement_between_formats"]["onnx-fp32 vs tflite-fp32"] == 1.0
    int8 = m.artifacts["tflite-int8"].info["quantization"]["calibration"]
    assert int8["images"] == 20 and int8["per_class"] == [4, 4, 4, 4, 4]


def test_model_card_is_rendered_from_the_manifest(model_dir):
    card = (model_dir / "MODEL_CARD.md").read_text()
    m = load_manifest(model_dir)
    for name, art in m.artifacts.items():
        agreement = art.info["parity_vs_keras"]["top1_agreement"]
        assert f"| `{name}` | `{art.file}` |" in card and f"{agreement:.3f}" in card
    assert "kneeoa train " in card and "--hidden-units 16" in card
    assert "Not a diagnostic device" in card


def test_fp32_gradcam_is_exact_on_the_device(model_dir):
    m = load_manifest(model_dir)
    for fmt in ("onnx-fp32", "tflite-fp32"):
        assert m.artifacts[fmt].info["parity_vs_keras"]["gradcam_r_min"] >= 0.999


@pytest.mark.parametrize("fmt", ["onnx-fp32", "tflite-fp32"])
def test_fp32_formats_match_keras(model_dir, trained_run, knee_png, fmt):
    import keras

    model = keras.saving.load_model(trained_run, compile=False)
    with Classifier(model_dir, format=fmt, calibrate=False) as clf:  # the network's own output, as Keras gives it
        pred = clf.predict(knee_png)
    spec = clf.manifest.preprocess  # the model's own contract (intensity, size), as the device applies it
    small, _ = prepare_gray(load_grayscale(knee_png), spec)
    ref = model.predict(to_model_input(small, spec), verbose=0)[0]
    got = np.array(list(pred.probabilities.values()))
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format_runs_and_roughly_agrees(model_dir, knee_png, fmt):
    with Classifier(model_dir, format="onnx-fp32") as ref_clf:
        ref = ref_clf.predict(knee_png)
    with Classifier(model_dir, format=fmt) as clf:
        assert clf.format == fmt
        pred = clf.predict(knee_png)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    # Barely trained weights (uniform-ish outputs, default batch-norm statistics) amplify quantization
    # error far beyond what a trained model shows; only loose agreement is asserted here.
    assert abs(pred.oa_probability - ref.oa_probability) < 0.25
    assert pred.cam.shape == (128, 128)
    assert pred.cam.min() >= 0.0 and pred.cam.max() <= 1.0


def test_predict_accepts_arrays(model_dir, knee_array):
    with Classifier(model_dir) as clf:
        from_array = clf.predict(knee_array)
        rgb = clf.predict(np.repeat(knee_array[..., None], 3, axis=-1))
    assert from_array.probabilities == pytest.approx(rgb.probabilities, abs=1e-6)
    assert from_array.kl_grade in range(5)
    assert from_array.label in ("Normal", "Osteoarthritis", "Refer")
    oa = sum(from_array.probabilities[c] for c in ("KL2", "KL3", "KL4"))
    assert from_array.oa_probability == pytest.approx(oa)
    band = clf.calibration.refer_band or (0.5, 0.5)
    expected = "Refer" if band[0] <= oa < band[1] else "Osteoarthritis" if oa >= 0.5 else "Normal"
    assert from_array.label == expected


def test_edge_infer_json_records(model_dir, knee_dataset, tmp_path):
    heatmaps = tmp_path / "heat maps"
    result = CliRunner().invoke(
        edge_infer,
        ["--model", str(model_dir), "--json", "--heatmap-dir", str(heatmaps), str(knee_dataset / "val" / "2")],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    for rec in records:
        assert set(rec) == {"input", "label", "probabilities", "oa_probability", "kl_grade", "heatmap", "notes", "gate"}
        assert rec["gate"] == "passed"  # validation knees: the gate's thresholds were set on them
        assert rec["notes"] == []
        assert set(rec["probabilities"]) == {"KL0", "KL1", "KL2", "KL3", "KL4"}
        assert rec["kl_grade"] == int(max(rec["probabilities"], key=rec["probabilities"].get)[2:])
        from PIL import Image

        with Image.open(rec["heatmap"]) as im:
            assert im.height == 96 and im.width > 96 and im.mode == "RGB"  # the overlay, then its legend strip


def test_formats_below_the_floor_are_rejected_not_shipped(trained_run, knee_dataset, tmp_path):
    from kneeoa_convert.errors import ParityFloorError
    from kneeoa_convert.pipeline import ConvertOptions, convert_model

    opts = ConvertOptions(
        formats=("onnx-fp32", "tflite-dynamic"),
        calibration_dir=knee_dataset / "val",
        verify_size=5,
        min_agreement=0.0,
        min_gradcam_r=-1.0,
    )
    strict = ConvertOptions(**{**opts.__dict__, "formats": ("onnx-fp32",), "min_agreement": 1.01})
    with pytest.raises(ParityFloorError, match=r"no format left to ship: .*top-1 agreement with Keras 1\.000 < 1\.01"):
        convert_model(trained_run, tmp_path / "strict", strict)
    assert not (tmp_path / "strict" / "model.fp32.onnx").exists()
    convert_model(trained_run, tmp_path / "ok", ConvertOptions(**{**opts.__dict__, "ship": ("tflite-dynamic",)}))
    m = load_manifest(tmp_path / "ok")
    assert list(m.artifacts) == ["tflite-dynamic"] and m.default_format == "tflite-dynamic"
    dropped = m.data["dropped_formats"]["onnx-fp32"]
    assert "left out by --ship" in dropped["reason"] and dropped["parity_vs_keras"]["top1_agreement"] == 1.0
    assert not (tmp_path / "ok" / "model.fp32.onnx").exists()
    assert "onnx-fp32" in (tmp_path / "ok" / "MODEL_CARD.md").read_text()


def test_the_card_names_a_weight_averaged_checkpoint_as_such():
    from kneeoa_train.swa import chosen_checkpoint

    assert chosen_checkpoint({"epoch": 6}) == "epoch 6"
    assert chosen_checkpoint({"epoch": "swa", "swa_epochs": [1, 2, 3, 4]}) == "the average of epochs 1–4 (SWA)"
    assert chosen_checkpoint({"epoch": "swa", "swa_epochs": [2, 4]}) == "the average of epochs 2, 4 (SWA)"
