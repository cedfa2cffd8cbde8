"""Training precision: bfloat16 only where the CPU has AMX, resolved and recorded."""

from __future__ import annotations

import pytest

from kneeoa_train.precision import cpu_flags, keras_policy, resolve_precision


def test_auto_picks_bfloat16_only_with_amx():
    assert resolve_precision("auto", {"avx512f", "amx_bf16", "amx_tile"}) == "bfloat16"
    assert resolve_precision("auto", {"avx2", "avx512f", "avx512_bf16"}) == "float32"
    assert resolve_precision("float32", {"amx_bf16", "amx_tile"}) == "float32"
    assert resolve_precision("bfloat16", set()) == "bfloat16"


def test_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "amx_tile", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == set()


def test_policies():
    assert keras_policy("bfloat16") == "mixed_bfloat16" and keras_policy("float32") == "float32"


@pytest.mark.slow  # trains a model of its own
def test_a_bfloat16_run_records_its_precision_and_saves_a_float32_model(knee_dataset, tmp_path):
    import json

    import keras

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train

    cfg = TrainConfig(
        train_dir=str(knee_dataset / "train"),
        val_dir=str(knee_dataset / "val"),
        out_dir=str(tmp_path / "run"),
        input_size=75,
        head_layer="mixed2",
        epochs=1,
        steps_per_epoch=1,
        batch_size=8,
        precision="bfloat16",
    )
    path = train(cfg)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["precision"] == "bfloat16" and config["train"]["precision"] == "bfloat16"
    model = keras.saving.load_model(path, compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for whatever runs next
