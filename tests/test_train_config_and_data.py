"""Training options and dataset handling (no TensorFlow needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.errors import DatasetError
from edge_infer.folders import balanced_order, scan_class_folders
from kneeoa.cli import main as kneeoa
from kneeoa_train.config import TrainConfig
from kneeoa_train.data import class_weights

from synthetic import write_knee_dataset


def test_config_file_fills_defaults_and_flags_override(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 7, "dropout": 0.5, "train_dir": "a", "val_dir": "b", "out_dir": "c"}))
    cfg = TrainConfig.from_sources(cfg_file, dropout=0.2, epochs=None)
    assert (cfg.epochs, cfg.dropout, cfg.input_size) == (7, 0.2, 75)


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="at least 75"):
        TrainConfig("a", "b", "c", input_size=64)
    with pytest.raises(ValueError, match="head_layer"):
        TrainConfig("a", "b", "c", head_layer="block5")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_sources(bad, train_dir="a", val_dir="b", out_dir="c")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object of options, got list"),
        ('{"input_size": 64}', "input_size must be at least 75"),
        ('{"epochs": "ten"}', "not supported between"),
    ],
)
def test_a_bad_config_file_is_named_in_its_error(tmp_path, content, problem):
    from edge_infer.errors import ConfigError

    bad = tmp_path / "my config.json"
    bad.write_text(content)
    with pytest.raises(ConfigError, match=problem) as info:
        TrainConfig.from_sources(bad, train_dir="a", val_dir="b", out_dir="c")
    assert str(info.value).startswith(str(bad))


def test_a_bad_flag_is_not_blamed_on_the_config_file(tmp_path):
    good = tmp_path / "c.json"
    good.write_text('{"epochs": 3}')
    with pytest.raises(ValueError, match=r"^input_size must be at least 75"):
        TrainConfig.from_sources(good, train_dir="a", val_dir="b", out_dir="c", input_size=64)


def test_unknown_select_metric_is_rejected():
    with pytest.raises(ValueError, match="select_metric must be one of"):
        TrainConfig("a", "b", "c", select_metric="kapa")


def test_a_run_directory_resumes_only_the_same_run(tmp_path):
    from kneeoa_train.config import CONFIG_FILE
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.trainer import _check_run_dir

    cfg = TrainConfig("a", "b", str(tmp_path), epochs=3)
    _check_run_dir(tmp_path, cfg)  # empty: fine
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"train": cfg.to_dict()}))
    _check_run_dir(tmp_path, cfg)  # same config, unfinished: resume
    with pytest.raises(TrainSetupError, match=r"different configuration \(epochs\)"):
        _check_run_dir(tmp_path, TrainConfig("a", "b", str(tmp_path), epochs=4))
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(TrainSetupError, match="already finished"):
        _check_run_dir(tmp_path, cfg)


def test_kl_folders_become_kl_classes(tmp_path):
    ds = scan_class_folders(write_knee_dataset(tmp_path / "kl", per_class=2, size=64))
    assert ds.classes == ["KL0", "KL1", "KL2", "KL3", "KL4"] and ds.kl_grades == [0, 1, 2, 3, 4]
    assert ds.counts() == [2] * 5


def test_other_folder_names_are_plain_classes(tmp_path):
    root = tmp_path / "plain"
    write_knee_dataset(root, per_class=2, size=64, grades=[0, 4])
    (root / "0").rename(root / "Normal")
    (root / "4").rename(root / "Osteoarthritis")
    ds = scan_class_folders(root)
    assert ds.classes == ["Normal", "Osteoarthritis"] and ds.kl_grades is None


def test_missing_class_folder_is_a_clear_error(tmp_path):
    root = write_knee_dataset(tmp_path / "d", per_class=1, size=64, grades=[0, 1])
    with pytest.raises(DatasetError, match=r"expected class sub-folders \['0', '1', '2'\]"):
        scan_class_folders(root, folders=["0", "1", "2"])


def test_balanced_order_alternates_classes_and_is_shuffled():
    labels = np.array([0] * 100 + [1] * 30 + [2] * 5)
    order = balanced_order(labels, 15, seed=3)
    assert len(order) == 15 and len(set(order.tolist())) == 15
    assert np.bincount(labels[order], minlength=3).tolist() == [5, 5, 5]
    assert not np.all(np.diff(labels[order]) >= 0)  # not sorted by class
    everything = balanced_order(labels, None)
    assert sorted(everything.tolist()) == list(range(len(labels)))


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 2, "balanced")
    assert w[1] / w[0] == pytest.approx(9.0)
    assert w[labels].mean() == pytest.approx(1.0)
    assert class_weights(labels, 2, "sqrt")[1] / class_weights(labels, 2, "sqrt")[0] == pytest.approx(3.0)


def test_convert_without_images_is_a_usage_error(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"x")
    result = CliRunner().invoke(kneeoa, ["convert", str(model), "--out", str(tmp_path / "o"), "--formats", "onnx-int8"])
    assert result.exit_code == 1 and "--calibration DIR" in result.output
    result = CliRunner().invoke(kneeoa, ["convert", str(model), "--out", str(tmp_path / "o"), "--formats", "caffe"])
    assert result.exit_code == 2 and "caffe" in result.output


def test_sord_targets_are_ordinal_soft_labels():
    from kneeoa_train.trainer import target_table

    cfg = TrainConfig("a", "b", "c", loss="sord", sord_alpha=2.0)
    t = target_table(5, cfg, [0, 1, 2, 3, 4])
    assert t.sum(1) == pytest.approx(np.ones(5))
    assert (t.argmax(1) == np.arange(5)).all()
    # Mass falls off with grade distance, symmetrically: exp(-2) per step of 1, exp(-8) at 2.
    assert t[2, 1] == pytest.approx(t[2, 3]) and t[2, 1] / t[2, 2] == pytest.approx(np.exp(-2.0))
    assert t[2, 0] / t[2, 2] == pytest.approx(np.exp(-8.0))
    assert (target_table(5, TrainConfig("a", "b", "c"), [0, 1, 2, 3, 4]) == np.eye(5)).all()
    from kneeoa_train.errors import TrainSetupError

    with pytest.raises(TrainSetupError, match="ordinal classes"):
        target_table(2, cfg, None)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig("a", "b", "c", loss="hinge")


def test_runs_that_predate_an_option_are_read_with_the_value_they_used(tmp_path):
    """A run recorded before --intensity/--precision existed trained with stored grey levels in
    float32: it resumes with those values, and its command says so."""
    from kneeoa_train.config import CONFIG_FILE, training_command
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.trainer import _check_run_dir

    old = TrainConfig("a", "b", str(tmp_path), intensity="stored", precision="float32").to_dict()
    del old["intensity"], old["precision"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"train": old}))
    _check_run_dir(tmp_path, TrainConfig("a", "b", str(tmp_path), intensity="stored", precision="float32"))
    with pytest.raises(TrainSetupError, match=r"different configuration \(intensity, precision\)"):
        _check_run_dir(tmp_path, TrainConfig("a", "b", str(tmp_path)))
    command = training_command(old)
    assert "--intensity stored" in command and "--precision float32" in command


def test_a_stage_must_start_from_a_model_of_the_same_intensity_contract(tmp_path):
    from kneeoa_train.config import CONFIG_FILE
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.trainer import check_init_from_contract

    earlier = tmp_path / "stage1"
    earlier.mkdir()
    (earlier / "model.keras").write_bytes(b"")
    (earlier / CONFIG_FILE).write_text(json.dumps({"train": {"epochs": 3}}))  # predates --intensity: stored
    check_init_from_contract(TrainConfig("a", "b", "c", init_from=str(earlier / "model.keras"), intensity="stored"))
    with pytest.raises(TrainSetupError, match="trained with --intensity stored, this run asks for percentile"):
        check_init_from_contract(TrainConfig("a", "b", "c", init_from=str(earlier / "model.keras")))


def test_a_single_class_folder_is_refused(tmp_path):
    root = write_knee_dataset(tmp_path / "d", per_class=1, size=64, grades=[0])
    with pytest.raises(DatasetError, match="one class folder"):
        scan_class_folders(root)
