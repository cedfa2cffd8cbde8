"""The input gate: image checks, the fitted checks on features with a known answer, and the
whole path through a converted model, `Classifier` and `edge-infer --json`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.gate import GATE_FILE, InputGate, Thresholds, check_image, pooled_features, thumbnail

from synthetic import synthetic_knee


def test_blank_and_two_knee_shapes_are_refused_before_inference():
    knee = synthetic_knee(2, 128, seed=1)
    assert check_image(knee).passed
    for level in (0, 128, 255):
        v = check_image(np.full((128, 128), level, np.uint8))
        assert (
            not v.passed
            and v.check == "blank"
            and "blank, nearly uniform" in v.reason
            and "1 distinct grey level " in v.reason
        )
    v = check_image(np.hstack([knee, knee[:, ::-1]]))
    assert not v.passed and v.check == "aspect" and "crop one knee" in v.reason and "256×128" in v.reason
    assert check_image(np.hstack([knee, knee[:, :60]])).passed  # 1.47:1 still counts as one knee
    field = np.zeros((512, 512), np.uint8)
    field[192:320, 192:320] = knee  # an uncropped film: a small knee in a large black field
    v = check_image(field)
    assert (
        not v.passed and v.check == "field" and "94% of the image is empty" in v.reason and "crop one knee" in v.reason
    )


def test_a_nearly_uniform_image_is_blank_however_its_contrast_was_stretched():
    """A v2 model's intensity contract stretches any image to the full grey range; the blank
    check counts distinct levels, which a stretch cannot make, so it refuses faint noise either way."""
    from edge_infer.preprocess import PreprocessSpec, standardize_intensity

    rng = np.random.default_rng(2)
    faint = np.clip(128 + rng.normal(0, 2, (224, 224)), 0, 255).astype(np.uint8)
    stretched = standardize_intensity(faint, PreprocessSpec(size=128, intensity="percentile"))
    assert np.percentile(stretched, 99.5) - np.percentile(stretched, 0.5) > 200  # spans the range now
    for image in (faint, stretched):
        v = check_image(image)
        assert not v.passed and v.check == "blank" and "distinct grey levels" in v.reason
    knee = synthetic_knee(2, 128, seed=1)
    assert check_image(standardize_intensity(knee, PreprocessSpec(size=128, intensity="percentile"))).passed


def test_pooling_keeps_top_and_bottom_apart():
    fm = np.zeros((5, 4, 3), np.float32)
    fm[:3] = 1.0  # the middle row of an odd height goes to the top
    np.testing.assert_allclose(pooled_features(fm), [1, 1, 1, 0, 0, 0], rtol=1e-6)
    assert not np.array_equal(pooled_features(fm), pooled_features(fm[::-1]))
    assert thumbnail(np.full((128, 128), 255, np.uint8)).shape == (256,)


def _map(f: np.ndarray) -> np.ndarray:
    """A ``(2, 1, d/2)`` feature map whose pooled features are ``f`` (top half, bottom half)."""
    half = len(f) // 2
    return np.stack([f[:half], f[half:]])[:, None, :].astype(np.float32)


def _small(t: np.ndarray) -> np.ndarray:
    """A 128 px model input whose 16×16 thumbnail is ``t``."""
    return np.repeat(np.repeat(t.reshape(16, 16) * 255, 8, 0), 8, 1).round().astype(np.uint8)


def _knee_thumb(rng) -> np.ndarray:
    t = rng.uniform(0.4, 0.9, 256)
    t[:64] = rng.uniform(0.0, 0.2, 64)  # a dark band: the "background"
    return t


def _fitted(rng, d=8):
    """A gate fitted on features of known structure: knees around two class centres, their three
    wrong versions shifted along fixed directions, negatives with inverted thumbnails."""
    from kneeoa_convert.gate import fit_arrays

    n = 300
    labels = rng.integers(0, 2, n)
    centres = np.array([[0.0] * d, [3.0] + [0.0] * (d - 1)])
    knees = centres[labels] + rng.normal(0, 1, (n, d))
    shifts = [np.eye(d)[i] * 8 for i in (1, 2, 3)]
    feats = np.stack([knees, *(knees + s for s in shifts)], 1).astype(np.float32)
    thumbs = np.array([_knee_thumb(rng) for _ in range(n)], np.float32)
    arrays = fit_arrays(feats, np.stack([thumbs, 1 - thumbs], 1), labels)
    return arrays, centres, shifts


def test_each_fitted_check_refuses_what_it_was_made_for_at_the_stated_false_refusal_rate():
    from kneeoa_convert.gate import set_thresholds

    rng = np.random.default_rng(0)
    arrays, centres, shifts = _fitted(rng)
    d = centres.shape[1]
    assert arrays["basis"].shape == (d, d - 1)  # all but one eigenvector kept at this size (256 at most)
    open_gate = InputGate(arrays, Thresholds(np.inf, np.inf, np.inf))
    knees = centres[rng.integers(0, 2, 400)] + rng.normal(0, 1, (400, d))
    val = [open_gate.scores(_map(k), _small(_knee_thumb(rng))) for k in knees]
    keys = ("distance", "not_upright", "negative")
    thresholds, report = set_thresholds({k: np.array([s[k] for s in val]) for k in keys}, 0.02)
    assert report["n"] == 400 and 0.0 < report["false_refusal_rate"] <= 0.02

    def only(name):
        t = dict.fromkeys(("distance", "orientation", "polarity"), np.inf) | {name: getattr(thresholds, name)}
        return InputGate(arrays, Thresholds(**t))

    far = only("distance").check(_map(np.full(d, 40.0)), _small(_knee_thumb(rng)))
    assert not far.passed and far.check == "distance" and "crop one knee's PA view" in far.reason
    for shift, word in zip(shifts, ("inverted", "rotated", "upside down"), strict=True):
        v = only("orientation").check(_map(knees[0] + shift), _small(_knee_thumb(rng)))
        assert not v.passed and v.check == "orientation" and word in v.reason
    neg = only("polarity").check(_map(knees[1]), _small(1 - _knee_thumb(rng)))
    assert not neg.passed and neg.check == "polarity" and "negative" in neg.reason
    assert InputGate(arrays, thresholds).check(_map(knees[2]), _small(_knee_thumb(rng))).passed


def test_knees_stored_as_negatives_are_left_out_of_the_fit_and_always_refused():
    """A dataset can hold negatives (kneeKL224 does); for them "the knee" and "its negative" are the
    wrong way round, so the fit leaves them out, and the polarity check refuses them at its own
    boundary rather than at a percentile, counting them against the refusal budget."""
    from kneeoa_convert.gate import POLARITY_BOUNDARY, fit_without_negatives, set_thresholds, stored_negatives

    rng = np.random.default_rng(3)
    d, n = 8, 300
    labels = rng.integers(0, 2, n)
    knees = np.array([[3.0 * c] + [0.0] * (d - 1) for c in labels]) + rng.normal(0, 1, (n, d))
    feats = np.stack([knees, *(knees + np.eye(d)[i] * 8 for i in (1, 2, 3))], 1).astype(np.float32)
    thumbs = np.array([_knee_thumb(rng) for _ in range(n)], np.float32)
    pairs = np.stack([thumbs, 1 - thumbs], 1)
    stored_negative = np.zeros(n, bool)
    stored_negative[:15] = True  # 5% of the knees arrive as negatives: their pair is the wrong way round
    pairs[stored_negative] = pairs[stored_negative][:, ::-1]
    found = stored_negatives(pairs)
    assert found[:15].all() and found[15:].mean() <= 0.01  # cross-fitted: the swapped pairs stand out
    arrays, left_out = fit_without_negatives(feats, pairs, labels)
    assert left_out == found.sum()
    gate = InputGate(arrays, Thresholds(np.inf, np.inf, np.inf))
    knee, negative = _knee_thumb(rng), 1 - _knee_thumb(rng)
    assert gate.scores(_map(knees[20]), _small(knee))["negative"] < POLARITY_BOUNDARY - 2
    assert gate.scores(_map(knees[20]), _small(negative))["negative"] > POLARITY_BOUNDARY + 2

    val = [gate.scores(_map(knees[i]), _small(pairs[i, 0])) for i in range(100)]  # 15 of them negatives
    scores = {k: np.array([v[k] for v in val]) for k in ("distance", "not_upright", "negative")}
    thresholds, report = set_thresholds(scores, 0.2)
    assert thresholds.polarity == POLARITY_BOUNDARY and report["negatives"] == 15
    assert sum(report["refused_by"].values()) == report["refused"]  # each refusal counted once, by its first check
    gap = report["polarity_scores"]
    assert gap["negatives_min"] > POLARITY_BOUNDARY >= gap["others_max"]
    assert 0.15 < report["false_refusal_rate"] <= 0.2  # the negatives count; the other checks get the rest
    with pytest.raises(Exception, match="15 of 100 look like negatives"):
        set_thresholds(scores, 0.1)


def _textbook_scores(a: dict, fm: np.ndarray, small: np.ndarray) -> dict:
    """The gate's scores written out as the method states them, unfolded and in float64."""
    a = {k: v.astype(np.float64) for k, v in a.items()}
    h = (fm.shape[0] + 1) // 2
    f = np.concatenate([fm[:h].mean((0, 1)), fm[h:].mean((0, 1))]).astype(np.float64)
    logits = ((f - a["feature_mean"]) / a["feature_scale"]) @ a["orientation_w"] + a["orientation_b"]
    diff = f[None, :] - a["class_means"]
    proj = diff @ a["basis"]
    residual = (diff**2).sum(1) - (proj**2).sum(1)
    distance = ((proj * a["basis_scale"]) ** 2).sum(1) + residual / a["residual_variance"][0]
    k = small.shape[0] // 16
    t = small.astype(np.float64)[: 16 * k, : 16 * k].reshape(16, k, 16, k).mean((1, 3)).ravel() / 255.0
    negative = ((t - a["polarity_mean"]) / a["polarity_scale"]) @ a["polarity_w"] + a["polarity_b"][0]
    return {
        "distance": distance.min(),
        "not_upright": np.logaddexp.reduce(logits[1:]) - logits[0],
        "negative": negative,
    }


def test_the_folded_scores_are_the_textbook_ones_on_the_shipped_gate():
    """The gate folds its linear steps into one product per image for speed; on the shipped
    gate's arrays and random feature maps near and far from the knees, that gives the method's own numbers."""
    from edge_infer.classifier import default_model_dir
    from edge_infer.manifest import load_manifest

    manifest = load_manifest(default_model_dir())
    gate, side = manifest.load_gate("onnx-int8"), manifest.preprocess.size
    rng = np.random.default_rng(5)
    for scale in (0.3, 1.0, 3.0):  # near the knees, and far from them
        fm = (rng.gamma(0.5, scale, (7, 6, gate.feature_size // 2))).astype(np.float32)
        small = rng.integers(0, 256, (side, side), dtype=np.uint8)
        got, want = gate.scores(fm, small), _textbook_scores(gate.arrays, fm, small)
        for key, value in want.items():
            # the float32 projection's rounding, times 1 / residual variance, dominates the distance
            assert got[key] == pytest.approx(value, rel=1e-3 if key == "distance" else 1e-4, abs=1e-3), key
    with pytest.raises(ValueError, match=r"\(H, W, C\) feature map"):
        gate.scores(fm[None], small)
    with pytest.raises(ValueError, match="square 2-D model input"):
        gate.scores(fm, small[:, :-1])


def test_a_gate_whose_arrays_do_not_fit_is_refused():
    rng = np.random.default_rng(1)
    arrays, _, _ = _fitted(rng)
    with pytest.raises(ValueError, match="lack basis"):
        InputGate({k: v for k, v in arrays.items() if k != "basis"}, Thresholds(1, 1, 1))
    with pytest.raises(ValueError, match="do not fit together"):
        InputGate(arrays | {"basis": arrays["basis"][:-1]}, Thresholds(1, 1, 1))
    with pytest.raises(ValueError, match="finite numbers"):
        Thresholds.from_dict({"distance": float("nan"), "orientation": 1, "polarity": 1})


def test_the_converted_tiny_model_ships_a_checked_gate(model_dir, tmp_path):
    from edge_infer import Classifier
    from edge_infer.errors import InputRefusedError, ManifestError
    from edge_infer.manifest import load_manifest

    m = load_manifest(model_dir)
    block = m.data["gate"]
    assert m.data["schema_version"] == 2 and block["file"] == GATE_FILE
    assert set(block["formats"]) == set(m.artifacts)
    for fmt, entry in block["formats"].items():
        assert entry["validation"]["false_refusal_rate"] <= block["target_false_refusal_rate"]
        assert m.load_gate(fmt) is not None
    with Classifier(model_dir) as clf, pytest.raises(InputRefusedError, match="refused: not a usable radiograph"):
        clf.predict(np.full((96, 96), 90, np.uint8))
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    with open(copy / GATE_FILE, "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01")
    with pytest.raises(ManifestError, match=r"gate\.npz: sha256 .* does not match"):
        Classifier(copy)


def test_edge_infer_refuses_in_place_and_no_gate_forces(model_dir, knee_png, tmp_path):
    from PIL import Image

    from edge_infer.cli import main as edge_infer

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128), 200, np.uint8)).save(blank)
    film = tmp_path / "film.png"
    Image.fromarray(np.hstack([np.asarray(Image.open(knee_png))] * 2)).save(film)
    out = tmp_path / "r.csv"
    args = ["--model", str(model_dir), "--json", "--output", str(out), str(knee_png), str(blank), str(film)]
    result = CliRunner().invoke(edge_infer, args)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(knee_png), str(blank), str(film)]
    assert records[1]["check"] == "blank" and "kl_grade" not in records[1] and "label" not in records[1]
    assert records[2]["check"] == "aspect" and "crop one knee" in records[2]["refused"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"refused: {blank}: not a usable radiograph")
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[2] == "refused" and "not a usable radiograph" in rows[2]
    forced = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--json", "--no-gate", str(blank)])
    record = json.loads(forced.stdout)
    assert (
        forced.exit_code == 0
        and record["kl_grade"] is not None
        and record["gate"].startswith("forced: not a usable radiograph")
    )
