"""Real-world inputs (no model needed): every encoding of one knee decodes to the same pixels, and
every kind of bad file fails with the project's own error naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge_infer import dicom
from edge_infer.decode import load_image
from edge_infer.errors import InputImageError

from badfiles import KNEE, bad_files
from reencode import LOSSLESS, LOSSY, write_dicom, write_encoding


@pytest.mark.parametrize("kind", LOSSLESS)
def test_lossless_encodings_decode_to_the_same_pixels(kind, tmp_path):
    gray, notes = load_image(write_encoding(KNEE, kind, tmp_path))
    assert gray.dtype == np.uint8 and gray.shape == KNEE.shape
    assert np.abs(gray.astype(int) - KNEE.astype(int)).max() <= 1  # 12-bit sBIT and q100 JPEG round by 1
    assert notes == (["multi-frame DICOM: used frame 1 of 2"] if kind == "dicom_multiframe" else [])


@pytest.mark.parametrize("kind", LOSSY)
def test_lossy_encodings_stay_close(kind, tmp_path):
    gray, _ = load_image(write_encoding(KNEE, kind, tmp_path))
    if kind == "upscaled_4x":
        assert gray.shape == (640, 640)
        gray = np.asarray(Image.fromarray(gray).resize(KNEE.shape[::-1], Image.Resampling.BOX))
    assert np.abs(gray.astype(float) - KNEE).mean() < 3


def test_dicom_without_a_window_uses_a_percentile_window(tmp_path):
    path = write_dicom(KNEE, tmp_path / "x.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(path)
    gray, notes = load_image(path)
    assert "percentile" in notes[0]
    assert gray.min() == 0 and gray.max() == 255  # stretched to the display range
    assert np.corrcoef(gray.ravel(), KNEE.ravel())[0, 1] > 0.99


def test_dicom_without_preamble_or_ending_is_found_in_folders(tmp_path):
    from edge_infer.batch import expand_inputs

    write_dicom(KNEE, tmp_path / "IM0001.dcm").rename(tmp_path / "IM0001")  # PACS export: no ending
    (tmp_path / "README").write_text("not an image")
    assert [p.name for p in expand_inputs((tmp_path,))] == ["IM0001"]
    assert load_image(tmp_path / "IM0001")[0].shape == KNEE.shape


def test_bad_files_raise_one_clear_error_naming_the_file(tmp_path):
    for path, problem in bad_files(tmp_path).items():
        with pytest.raises(InputImageError, match=problem) as info:
            load_image(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch):
    png = write_encoding(KNEE, "png8", tmp_path)
    dcm = write_dicom(KNEE, tmp_path / "x.dcm")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # Pillow warns above this, refuses above 2x
    with pytest.raises(InputImageError, match="image too large"):
        load_image(png)
    monkeypatch.setattr(dicom, "MAX_DICOM_PIXELS", 100 * 100)
    with pytest.raises(InputImageError, match="DICOM image too large"):
        load_image(dcm)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=4096),
    suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".dcm", ""]),
    prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"BM", bytes(128) + b"DICM"]),
)
def test_random_bytes_only_ever_raise_our_error(tmp_path, data, suffix, prefix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(prefix + data)
    try:
        gray, _ = load_image(path)
    except InputImageError as e:
        assert str(e).startswith(str(path))
    else:
        assert gray.dtype == np.uint8 and gray.ndim == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    mode=st.sampled_from(["L", "RGB", "RGBA", "I;16", "P", "LA", "1"]),
    fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "BMP"]),
    seed=st.integers(0, 2**16),
)
def test_random_valid_images_load_or_are_too_small(tmp_path, h, w, mode, fmt, seed):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    if fmt == "JPEG" and mode not in ("L", "RGB"):
        im = im.convert("RGB")
    if fmt == "BMP" and mode in ("I;16", "LA"):
        im = im.convert("L")
    path = tmp_path / f"img.{fmt.lower()}"
    im.save(path, fmt)
    try:
        gray, _ = load_image(path)
    except InputImageError as e:
        too_small = "too small" in str(e) and min(h, w) < 32
        too_long = "aspect ratios over 8:1" in str(e) and max(h, w) > 8 * min(h, w)
        assert too_small or too_long, str(e)
    else:
        assert gray.shape == (h, w) and gray.dtype == np.uint8


def test_dicom_without_pydicom_names_the_extra(tmp_path, monkeypatch):
    import sys

    path = write_dicom(KNEE, tmp_path / "x.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if not installed
    with pytest.raises(InputImageError, match=r'pip install "kneeoa\[dicom\]"'):
        load_image(path)


def test_malformed_dicom_lut_is_a_clear_error(tmp_path):
    import pydicom
    from pydicom.sequence import Sequence

    path = write_dicom(KNEE, tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence = Sequence([])  # present but empty
    ds.save_as(path)
    with pytest.raises(InputImageError, match="invalid DICOM modality/VOI LUT"):
        load_image(path)
