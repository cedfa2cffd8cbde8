"""Stochastic weight averaging (kneeoa_train.swa): the running average, its resume rules, the
learning-rate schedule around it, and a real tiny run that selects between it and the epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _weights(value: float) -> list[np.ndarray]:
    return [np.full((3, 2), value, np.float32), np.full((4,), -value, np.float32), np.array(7, np.int64)]


def test_the_average_is_the_mean_of_each_epoch_added_once_across_a_resume(tmp_path):
    from kneeoa_train.swa import RunningAverage

    path = tmp_path / "swa_state.npz"
    first = RunningAverage(path)
    assert first.add(3, _weights(1.0))
    assert first.add(4, _weights(2.0))
    # A killed run resumes: a new object reads the sum; the rerun of epoch 4 does not count twice.
    resumed = RunningAverage(path)
    assert resumed.epochs == [3, 4]
    assert not resumed.add(4, _weights(100.0))
    assert resumed.add(5, _weights(6.0))
    mean = resumed.average(_weights(0.0))
    np.testing.assert_allclose(mean[0], np.full((3, 2), 3.0))
    np.testing.assert_allclose(mean[1], np.full((4,), -3.0))
    assert [m.dtype for m in mean] == [np.float32, np.float32, np.int64]
    assert RunningAverage(path).epochs == [3, 4, 5]
    assert not list(tmp_path.glob("*.tmp*")), "the state is replaced whole, no temporary file left"


def test_an_epoch_with_weights_that_are_not_finite_is_never_added(tmp_path):
    from kneeoa_train.swa import RunningAverage

    running = RunningAverage(tmp_path / "s.npz")
    running.add(1, _weights(1.0))
    assert not running.add(2, _weights(float("nan")))
    assert RunningAverage(tmp_path / "s.npz").epochs == [1]


@pytest.mark.parametrize(
    ("score", "best", "wins"),
    [
        (0.80, {"quadratic_weighted_kappa": 0.78, "epoch": 3}, True),
        (0.77, {"quadratic_weighted_kappa": 0.78, "epoch": 3}, False),
        (0.78, {"quadratic_weighted_kappa": 0.78, "epoch": 3}, False),
        (0.10, {}, True),
        # resumed after the last epoch, once the average had been saved as the checkpoint
        (0.80, {"quadratic_weighted_kappa": 0.80, "epoch": "swa", "swa_epochs": [2, 3]}, True),
    ],
)
def test_the_average_becomes_the_checkpoint_only_by_beating_the_best_epoch(score, best, wins):
    from kneeoa_train.swa import average_wins

    assert average_wins(score, best, "quadratic_weighted_kappa") is wins


def test_a_run_recorded_before_averaging_existed_resumes_without_it():
    from kneeoa_train.config import with_legacy_values

    saved = {"train_dir": "t", "val_dir": "v", "out_dir": "o", "epochs": 10, "precision": "float32"}
    restored = with_legacy_values(saved)
    assert restored["swa_epochs"] == 0 and restored["swa_learning_rate"] is None


def test_an_empty_or_mismatched_average_says_so(tmp_path):
    from kneeoa_train.swa import RunningAverage

    running = RunningAverage(tmp_path / "s.npz")
    with pytest.raises(ValueError, match="no epoch has been averaged"):
        running.average(_weights(0.0))
    running.add(1, _weights(1.0))
    with pytest.raises(ValueError, match="2 weight arrays, the average holds 3"):
        running.add(2, _weights(1.0)[:2])
    with pytest.raises(ValueError, match=r"a weight of shape \(2, 3\) where the average holds \(3, 2\)"):
        running.add(2, [np.zeros((2, 3), np.float32), *_weights(1.0)[1:]])


def test_the_schedule_decays_to_the_constant_rate_and_holds_it_through_the_averaged_epochs():
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import learning_rate_schedule

    cfg = TrainConfig(train_dir="t", val_dir="v", out_dir="o", epochs=5, swa_epochs=2, learning_rate=1e-3)
    schedule = learning_rate_schedule(cfg, steps=10)
    rates = [float(schedule(step)) for step in (0, 15, 30, 35, 49)]
    assert rates[0] == pytest.approx(1e-3)
    assert 5e-4 < rates[1] < 1e-3
    assert rates[2:] == pytest.approx([5e-4] * 3), "half the peak by default, constant once averaging starts"
    every_epoch = TrainConfig(
        train_dir="t", val_dir="v", out_dir="o", epochs=3, swa_epochs=3, learning_rate=1e-3, swa_learning_rate=2e-4
    )
    assert learning_rate_schedule(every_epoch, steps=10) == pytest.approx(2e-4)
    plain = learning_rate_schedule(TrainConfig(train_dir="t", val_dir="v", out_dir="o", epochs=2), steps=10)
    assert float(plain(20)) == pytest.approx(0.0, abs=1e-9), "without SWA the cosine spans every epoch"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 2, "swa_epochs": 3}, "swa_epochs must be between 0 and epochs"),
        ({"learning_rate": 1e-4, "swa_epochs": 1, "swa_learning_rate": 1e-3}, "must be positive and at most"),
        ({"swa_learning_rate": 1e-4}, "give swa_epochs too"),
    ],
)
def test_impossible_averaging_options_are_refused(options, message):
    from edge_infer.errors import ConfigError
    from kneeoa_train.config import TrainConfig

    with pytest.raises(ConfigError, match=message):
        TrainConfig(train_dir="t", val_dir="v", out_dir="o", **options)


@pytest.mark.slow
def test_a_run_averages_its_last_epochs_and_keeps_whichever_validates_best(knee_dataset, tmp_path):
    import keras

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train

    out = tmp_path / "run"
    cfg = TrainConfig(
        train_dir=str(knee_dataset / "train"),
        val_dir=str(knee_dataset / "val"),
        out_dir=str(out),
        input_size=75,
        hidden_units=16,
        epochs=3,
        swa_epochs=2,
        steps_per_epoch=2,
        batch_size=8,
        learning_rate=1e-3,
    )
    path = train(cfg)
    report = json.loads((out / "swa.json").read_text())
    best = json.loads((out / "best.json").read_text())
    assert report["epochs"] == [2, 3]
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    best_epoch = max(epochs, key=lambda r: r["val"]["quadratic_weighted_kappa"])["val"]["quadratic_weighted_kappa"]
    assert report["selected"] == (report["val"]["quadratic_weighted_kappa"] > best_epoch)
    if report["selected"]:
        assert best["epoch"] == "swa" and best["swa_epochs"] == [2, 3]
    else:
        assert best["val"]["quadratic_weighted_kappa"] == best_epoch and best["epoch"] in (1, 2, 3)
    assert json.loads((out / "config.json").read_text())["train"]["swa_epochs"] == 2
    from kneeoa_train.runlog import markdown

    log = markdown([out])
    assert "| average of 2–3 (SWA) |" in log
    assert ("Selected the average of epochs 2–3" in log) == report["selected"]
    if report["selected"]:
        with np.load(out / "swa_state.npz") as z:
            expected = z["w0"] / 2
        np.testing.assert_allclose(keras.saving.load_model(path).get_weights()[0], expected, rtol=1e-6)


def test_a_run_directory_from_before_averaging_can_still_be_resumed(tmp_path):
    """Its config.json lacks the SWA keys; resuming it with the same options is not a new run."""
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.errors import TrainSetupError
    from kneeoa_train.trainer import _check_run_dir

    cfg = TrainConfig(train_dir="t", val_dir="v", out_dir=str(tmp_path), epochs=10)
    old = {k: v for k, v in cfg.to_dict().items() if not k.startswith("swa_")}
    (tmp_path / "config.json").write_text(json.dumps({"train": old}))
    _check_run_dir(tmp_path, cfg)
    with pytest.raises(TrainSetupError, match="different configuration \\(swa_epochs\\)"):
        _check_run_dir(
            tmp_path, TrainConfig(train_dir="t", val_dir="v", out_dir=str(tmp_path), epochs=10, swa_epochs=2)
        )
