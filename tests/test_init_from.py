"""Progressive resizing: a trained model's weights start a run at another input size."""

from __future__ import annotations

import numpy as np
import pytest


def test_weights_carry_over_to_a_larger_input(trained_run):
    import keras

    from kneeoa_train.model import build_model
    from kneeoa_train.trainer import init_from_model

    source = keras.saving.load_model(trained_run, compile=False)
    bigger = build_model(5, 96, "mixed5", hidden_units=16)
    init_from_model(bigger, trained_run)
    pairs = [(a, b) for a, b in zip(source.layers, bigger.layers, strict=True) if a.weights]
    assert len(pairs) > 100
    for a, b in pairs[:3] + pairs[-2:]:  # the stem's conv and batch norm ... the head's dense layers
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)
    assert pairs[-1][1].name == "logits"
    assert bigger.input_shape[1:3] == (96, 96)


def test_another_architecture_is_refused(trained_run, tmp_path):
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.model import build_model
    from kneeoa_train.trainer import init_from_model

    with pytest.raises(TrainSetupError, match="does not match"):
        init_from_model(build_model(5, 75, "mixed5", hidden_units=8), trained_run)
    with pytest.raises(TrainSetupError, match="not found"):
        init_from_model(build_model(5, 75, "mixed5", hidden_units=16), tmp_path / "missing.keras")


def test_sord_run_from_a_trained_model(trained_run, knee_dataset, tmp_path):
    """The whole path: --init-from at a new size with SORD targets trains and selects a checkpoint."""
    import json

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train

    cfg = TrainConfig(
        train_dir=str(knee_dataset / "train"),
        val_dir=str(knee_dataset / "val"),
        out_dir=str(tmp_path / "run"),
        input_size=96,
        head_layer="mixed5",
        hidden_units=16,
        epochs=1,
        steps_per_epoch=2,
        batch_size=8,
        loss="sord",
        init_from=str(trained_run),
        learning_rate=1e-4,
    )
    path = train(cfg)
    assert path.is_file()
    record = json.loads((tmp_path / "run" / "epochs.jsonl").read_text().splitlines()[0])
    assert record["val"]["n"] == 20 and np.isfinite(record["loss"])
