"""A model trained on non-KL folder names: plain classes, no KL grade, screening from an OA class."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edge_infer.cli import main as edge_infer

from synthetic import write_knee_dataset


@pytest.mark.slow  # trains and converts a model of its own
def test_normal_vs_osteoarthritis_folders(tmp_path, knee_png):
    from kneeoa_convert.pipeline import ConvertOptions, convert_model
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train

    for split, n in (("train", 4), ("val", 2)):
        root = write_knee_dataset(tmp_path / split, per_class=n, size=80, grades=[0, 4])
        (root / "0").rename(root / "Normal")
        (root / "4").rename(root / "Osteoarthritis")
    model = train(
        TrainConfig(
            str(tmp_path / "train"),
            str(tmp_path / "val"),
            str(tmp_path / "run"),
            head_layer="mixed2",
            epochs=1,
            steps_per_epoch=1,
            batch_size=4,
        )
    )
    out = tmp_path / "model"
    convert_model(
        model, out, ConvertOptions(formats=("onnx-fp32",), calibration_dir=tmp_path / "val", verify_size=4, gate=False)
    )

    result = CliRunner().invoke(edge_infer, ["--model", str(out), "--json", str(knee_png)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kl_grade"] is None
    assert set(record["probabilities"]) == {"Normal", "Osteoarthritis"}
    assert record["oa_probability"] == pytest.approx(record["probabilities"]["Osteoarthritis"], abs=1e-6)
    assert record["label"] == ("Osteoarthritis" if record["oa_probability"] >= 0.5 else "Normal")
