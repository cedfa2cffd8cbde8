"""One intensity contract (issue 14): under a ``percentile`` model, the same knee gets the same
answer however its grey levels were stored: 8-bit PNG, 16-bit PNG over the full range or in a
narrow band (with and without sBIT), 32-bit float TIFF, 12-bit DICOM with a window and without,
MONOCHROME1. The stretch runs on the file's own levels, so nothing is posterised before it; a
``stored`` model (v1) sees exactly what it saw before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_infer.classifier import Classifier, default_model_dir
from edge_infer.decode import decode_image
from edge_infer.errors import InputImageError
from edge_infer.gate import check_image
from edge_infer.manifest import load_manifest
from edge_infer.preprocess import PreprocessSpec, prepare_gray, standardize_with_histogram

from storage_forms import STORAGE_FORMS, write_storage_form

REPO = Path(__file__).resolve().parent.parent
KNEE_FILE = REPO / "examples" / "9031141R.png"  # a real validation knee, KL 2 (examples/ATTRIBUTION.md)
KNEE = np.asarray(Image.open(KNEE_FILE).convert("L"))
PERCENTILE = PreprocessSpec(size=75, intensity="percentile")
STORED = PreprocessSpec(size=75)
MAX_INPUT_DIFF = 0.5
"""Mean absolute difference (grey levels of 255) allowed between the model inputs of two storage
forms of one knee. Stretched from its 8-bit decode, the narrow-band 16-bit PNG of
``examples/9031141R.png`` differs by 3.1 at 75 px."""
MAX_OA_DIFF = 0.02

WINDOWED_OR_8_BIT = {"png8", "dicom12_window", "dicom12_window_mono1"}


@pytest.fixture(scope="module")
def forms(tmp_path_factory) -> dict[str, Path]:
    """The knee in every storage form, in a folder with a space in its name."""
    folder = tmp_path_factory.mktemp("forms") / "stored knee"
    return {form: write_storage_form(KNEE, form, folder) for form in STORAGE_FORMS}


def test_decoding_keeps_the_levels_of_a_file_finer_than_8_bits(forms):
    for form, path in forms.items():
        decoded = decode_image(path)
        assert (decoded.levels is None) == (form in WINDOWED_OR_8_BIT), form
        if decoded.levels is not None:
            assert decoded.levels.shape == decoded.gray.shape
    # what an 8-bit route had to stretch: the narrow 16-bit band is a few grey levels, and its
    # stretch misses the bound the full-precision route meets
    narrow = decode_image(forms["png16_narrow"])
    assert len(np.unique(narrow.gray)) <= 20
    assert len(np.unique(narrow.levels)) == len(np.unique(KNEE))
    from_8_bits, _ = prepare_gray(narrow.gray, PERCENTILE)
    assert np.abs(from_8_bits.astype(int) - prepare_gray(KNEE, PERCENTILE)[0].astype(int)).mean() > MAX_INPUT_DIFF


@pytest.mark.parametrize("form", STORAGE_FORMS)
def test_every_storage_form_gives_the_percentile_model_the_same_input(forms, form):
    reference, _ = prepare_gray(KNEE, PERCENTILE)
    decoded = decode_image(forms[form])
    small, _ = prepare_gray(decoded.gray, PERCENTILE, decoded.levels)
    diff = np.abs(small.astype(int) - reference.astype(int))
    assert diff.mean() < MAX_INPUT_DIFF, f"{form}: mean difference {diff.mean():.2f}"
    blank_8_bit = check_image(decoded.gray)  # an 8-bit route's checks refused the narrow band as blank
    assert blank_8_bit.passed == (form != "png16_narrow")
    contract, histogram = standardize_with_histogram(decoded.gray, PERCENTILE, decoded.levels)
    assert check_image(contract, histogram).passed


@pytest.mark.parametrize("form", STORAGE_FORMS)
def test_a_stored_model_sees_what_it_saw_before(forms, form):
    decoded = decode_image(forms[form])
    before, _ = prepare_gray(decoded.gray, STORED)
    after, _ = prepare_gray(decoded.gray, STORED, decoded.levels)
    np.testing.assert_array_equal(after, before)
    contract, histogram = standardize_with_histogram(decoded.gray, STORED, decoded.levels)
    assert contract is decoded.gray and histogram is None  # the gate counts its own, as before


@pytest.mark.parametrize("form", ["png8", "png16_narrow", "tiff_float", "dicom12_no_window"])
def test_the_histogram_the_contract_counts_is_the_stretched_images(forms, form):
    decoded = decode_image(forms[form])
    contract, histogram = standardize_with_histogram(decoded.gray, PERCENTILE, decoded.levels)
    np.testing.assert_array_equal(histogram, np.bincount(contract.ravel(), minlength=256))
    assert check_image(contract, histogram) == check_image(contract)


def test_a_blank_16_bit_image_is_left_as_it_is_and_refused():
    flat = np.full((96, 96), 31000, np.uint16)
    gray = np.full((96, 96), 121, np.uint8)
    contract, histogram = standardize_with_histogram(gray, PERCENTILE, flat)
    assert contract is gray
    assert check_image(contract, histogram).check == "blank"


def test_a_16_bit_flat_field_with_sensor_noise_is_blank_though_its_stretch_is_not(model_dir, tmp_path):
    """Stretched, noise on a flat 16-bit field makes many grey levels; as stored it is flat."""
    rng = np.random.default_rng(0)
    path = tmp_path / "flat16.png"
    Image.fromarray(np.clip(30000 + rng.normal(0, 20, (128, 128)), 0, 65535).astype(np.uint16)).save(path)
    decoded = decode_image(path)
    contract, histogram = standardize_with_histogram(decoded.gray, PERCENTILE, decoded.levels)
    assert check_image(contract, histogram).passed  # the stretched image alone looks like contrast
    with Classifier(model_dir) as clf:
        verdict = clf.prepare(path).verdict
    assert verdict.check == "blank" and "as stored" in verdict.reason


def test_a_float_image_with_nan_or_inf_is_an_error_naming_it(tmp_path):
    ramp = np.linspace(0, 1, 96 * 96, dtype=np.float32).reshape(96, 96)
    for bad in (np.nan, np.inf):
        img = ramp.copy()
        img[3, 3] = bad
        Image.fromarray(img).save(tmp_path / "bad.tif")
        with pytest.raises(InputImageError, match=r"bad\.tif: the image holds 1 NaN or infinite pixel values"):
            decode_image(tmp_path / "bad.tif")


@pytest.mark.parametrize("form", sorted(STORAGE_FORMS))
def test_training_reads_every_form_as_the_device_does(model_dir, forms, form):
    """Training, calibration and the benchmarks read files through ``load_images``; for a file
    finer than 8 bits they too must stretch its own levels, or the model learns another input."""
    from edge_infer.folders import load_images

    with Classifier(model_dir) as clf:
        device = clf.prepare(forms[form]).small
        images, ok = load_images([forms[form]], clf.manifest.preprocess)
    assert list(ok) == [0]
    np.testing.assert_array_equal(images[0], device)


def _image_sized_bincounts(monkeypatch, classifier: Classifier, path: Path) -> int:
    calls = []
    bincount = np.bincount

    def counting(x, *args, **kwargs):
        calls.append(np.size(x))
        return bincount(x, *args, **kwargs)

    monkeypatch.setattr(np, "bincount", counting)
    classifier.prepare(path)
    monkeypatch.undo()
    return sum(size == KNEE.size for size in calls)


def test_one_histogram_per_image_for_the_contract_and_the_gate(model_dir, forms, monkeypatch):
    with Classifier(model_dir) as clf:
        assert clf.manifest.preprocess.intensity == "percentile"
        assert _image_sized_bincounts(monkeypatch, clf, forms["png8"]) == 1
        # a finer file: one count of its levels for the contract, one of its 8-bit decode for flatness
        assert _image_sized_bincounts(monkeypatch, clf, forms["png16_narrow"]) == 2


def _same_answers_through_classifier(model: Path, forms: dict[str, Path]) -> None:
    with Classifier(model) as clf:
        reference = clf.prepare(forms["png8"])
        expected = clf.infer(reference, heatmap=False)
        for form, path in forms.items():
            prepared = clf.prepare(path)
            diff = np.abs(prepared.small.astype(int) - reference.small.astype(int)).mean()
            assert diff < MAX_INPUT_DIFF, f"{form}: model inputs differ by {diff:.2f} on average"
            got = clf.infer(prepared, heatmap=False, source=str(path))
            assert got.kl_grade == expected.kl_grade, form
            assert abs(got.oa_probability - expected.oa_probability) < MAX_OA_DIFF, form
            assert got.gate == expected.gate, form


def _same_answers_through_cli(model: Path, forms: dict[str, Path]) -> None:
    paths = [str(p) for p in forms.values()]
    proc = subprocess.run(
        [sys.executable, "-m", "edge_infer", "--model", str(model), "--json", *paths],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {r["input"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert list(records) == paths
    expected = records[str(forms["png8"])]
    for form, path in forms.items():
        got = records[str(path)]
        assert got["kl_grade"] == expected["kl_grade"], form
        assert abs(got["oa_probability"] - expected["oa_probability"]) < MAX_OA_DIFF, form


def test_the_same_knee_gets_the_same_answer_however_stored(model_dir, forms):
    assert load_manifest(model_dir).preprocess.intensity == "percentile"
    _same_answers_through_classifier(model_dir, forms)
    _same_answers_through_cli(model_dir, forms)


@pytest.mark.parametrize("model", [default_model_dir()], ids=["models/default"])
def test_the_shipped_model_gives_the_same_knee_the_same_answer_however_stored(model, forms):
    intensity = load_manifest(model).preprocess.intensity
    if intensity != "percentile":
        pytest.skip(f"the shipped model predates the intensity contract (preprocess.intensity is {intensity!r})")
    _same_answers_through_classifier(model, forms)
    _same_answers_through_cli(model, forms)


def test_the_shipped_stored_model_sees_every_form_as_decoded_to_8_bits(forms):
    """A ``stored`` model's input is the 8-bit decode's, bit for bit, whatever levels the file has."""
    model = default_model_dir()
    spec = load_manifest(model).preprocess
    if spec.intensity != "stored":
        pytest.skip("the shipped model follows the percentile contract; the stored path is tested above")
    with Classifier(model) as clf:
        for form, path in forms.items():
            decoded = decode_image(path)
            prepared = clf.prepare(path)
            np.testing.assert_array_equal(prepared.small, prepare_gray(decoded.gray, spec)[0], err_msg=form)
            assert prepared.verdict == check_image(decoded.gray), form
