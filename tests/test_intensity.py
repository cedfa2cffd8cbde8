"""The intensity contract: the same knee gets the same model input however its grey levels were
stored (a v2 model's ``percentile`` contract), and v1 models keep grey levels as decoded."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.preprocess import PreprocessSpec, prepare_gray, standardize_intensity

from synthetic import synthetic_knee

PERCENTILE = PreprocessSpec(size=64, intensity="percentile")


def test_stored_keeps_grey_levels():
    knee = synthetic_knee(2, 96, seed=3)
    assert standardize_intensity(knee, PreprocessSpec(size=64)) is knee


def test_percentile_stretches_the_robust_range_to_full_scale():
    knee = synthetic_knee(2, 96, seed=3)
    out = standardize_intensity(knee, PERCENTILE)
    assert out.dtype == np.uint8 and out.shape == knee.shape
    lo, hi = np.percentile(out, [0.5, 99.5])
    assert lo <= 2 and hi >= 253


@pytest.mark.parametrize(("scale", "offset"), [(0.5, 0), (0.4, 100), (0.25, 60)])
def test_a_dim_or_offset_copy_of_a_knee_gets_nearly_the_same_input(scale, offset):
    knee = synthetic_knee(3, 128, seed=4)
    squeezed = np.clip(np.rint(knee * scale + offset), 0, 255).astype(np.uint8)  # a narrower window
    a, _ = prepare_gray(knee, PERCENTILE)
    b, _ = prepare_gray(squeezed, PERCENTILE)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert np.median(diff) <= 2 and diff.mean() < 3  # quantisation of the narrower copy, no more
    raw_a, _ = prepare_gray(knee, PreprocessSpec(size=64))
    raw_b, _ = prepare_gray(squeezed, PreprocessSpec(size=64))
    assert np.abs(raw_a.astype(int) - raw_b.astype(int)).mean() > 10  # as stored, they differ


def test_a_constant_image_is_left_as_it_is():
    flat = np.full((64, 64), 77, np.uint8)
    np.testing.assert_array_equal(standardize_intensity(flat, PERCENTILE), flat)


def test_the_contract_round_trips_through_the_manifest_block():
    d = PERCENTILE.to_dict()
    assert d["intensity"]["method"] == "percentile" and (d["intensity"]["low"], d["intensity"]["high"]) == (0.5, 99.5)
    assert PreprocessSpec.from_dict(d) == PERCENTILE
    legacy = {k: v for k, v in d.items() if k != "intensity"}  # v1 manifests have no intensity block
    assert PreprocessSpec.from_dict(legacy).intensity == "stored"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"intensity": "auto"}, "intensity must be one of"), ({"percentiles": (99.5, 0.5)}, "low < high")],
)
def test_an_unknown_contract_is_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        PreprocessSpec(size=64, **kwargs)


def test_a_schema_1_manifest_cannot_carry_a_percentile_contract(tmp_path):
    """An edge_infer that reads only schema 1 would ignore the intensity block: such a manifest is
    written as schema 2, and a schema 1 manifest claiming it is refused."""
    import json
    import shutil

    from edge_infer.classifier import default_model_dir
    from edge_infer.errors import ManifestError
    from edge_infer.manifest import load_manifest

    model = tmp_path / "m"
    shutil.copytree(default_model_dir(), model)
    data = json.loads((model / "manifest.json").read_text())
    data["schema_version"] = 1  # as the v1 model shipped, before its gate was fitted
    data.pop("gate", None)
    data["preprocess"].pop("intensity", None)  # schema 1 had no intensity block
    (model / "manifest.json").write_text(json.dumps(data))
    assert load_manifest(model).preprocess.intensity == "stored"
    data["preprocess"]["intensity"] = {"method": "percentile", "low": 0.5, "high": 99.5}
    (model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="schema_version 1 cannot carry"):
        load_manifest(model)
    data["schema_version"] = 2
    (model / "manifest.json").write_text(json.dumps(data))
    assert load_manifest(model).preprocess.intensity == "percentile"
    data["schema_version"] = 3
    (model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="a newer model needs a newer kneeoa"):
        load_manifest(model)


def test_percentile_zero_is_the_darkest_pixel_at_every_bit_depth():
    """Integer levels are counted, float levels sorted: both read percentile 0 as the minimum."""
    from edge_infer.intensity import percentile_stretch

    levels = np.full((40, 40), 200, np.uint16)
    levels[:20] = 120  # nothing at level 0: the darkest pixel is 120
    gray = (levels // 2).astype(np.uint8)
    as_integers, _ = percentile_stretch(gray, (0.0, 100.0), levels)
    as_floats, _ = percentile_stretch(gray, (0.0, 100.0), levels.astype(np.float32))
    np.testing.assert_array_equal(as_integers, as_floats)
    assert set(np.unique(as_integers)) == {0, 255}
