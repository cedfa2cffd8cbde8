"""Loading and preprocessing: formats that must give the same pixels, and files that must fail cleanly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edge_infer.decode import load_grayscale
from edge_infer.errors import InputImageError
from edge_infer.preprocess import (
    PreprocessSpec,
    pad_to_square,
    prepare_gray,
    to_model_input,
)


def test_gray_png_round_trips(tmp_path, knee_array):
    path = tmp_path / "k.png"
    Image.fromarray(knee_array).save(path)
    np.testing.assert_array_equal(load_grayscale(path), knee_array)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_encodings_give_the_same_grey(tmp_path, knee_array, mode):
    path = tmp_path / f"k_{mode}.png"
    Image.fromarray(knee_array).convert(mode).save(path)
    got = load_grayscale(path).astype(int)
    assert np.abs(got - knee_array.astype(int)).max() <= 1


def test_sixteen_bit_png_scales_to_the_same_grey(tmp_path, knee_array):
    path = tmp_path / "k16.png"
    Image.fromarray(knee_array.astype(np.uint16) * 257).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    np.testing.assert_array_equal(load_grayscale(path), knee_array)


def test_exif_orientation_is_honoured(tmp_path):
    wide = np.zeros((60, 100), np.uint8)
    wide[:, :10] = 255  # bright band on the left
    im = Image.fromarray(wide)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    gray = load_grayscale(path)
    assert gray.shape == (100, 60)
    assert gray[:10].mean() > 200  # the band is now on top


def test_pad_to_square_centres_and_records_position():
    img = np.full((40, 100), 200, np.uint8)
    square, pad = pad_to_square(img)
    assert square.shape == (100, 100)
    assert (pad.top, pad.left, pad.side) == (30, 0, 100)
    assert square[:30].max() == 0 and square[70:].max() == 0
    np.testing.assert_array_equal(square[30:70], img)


def test_model_input_range_and_channels(knee_array):
    spec = PreprocessSpec(size=75)
    small, _ = prepare_gray(knee_array, 75)
    x = to_model_input(small, spec)
    assert x.shape == (1, 75, 75, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(to_model_input(np.array([[0, 255]], np.uint8), spec)[0, 0, :, 0], [-1.0, 1.0])


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("notes.png", b"this is not an image\n", "not an image"),
        ("empty.png", b"", "empty file"),
        ("tiny.png", None, "too small"),
        ("cut.png", "truncated", "unreadable or truncated"),
    ],
)
def test_bad_files_raise_input_image_error_naming_the_file(tmp_path, knee_array, name, content, problem):
    path = tmp_path / name
    if content is None:
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(path)
    elif content == "truncated":
        buf = io.BytesIO()
        Image.fromarray(knee_array).save(buf, format="PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputImageError, match=problem) as info:
        load_grayscale(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputImageError, match="no such file"):
        load_grayscale(tmp_path / "absent.png")
    folder = tmp_path / "looks_like.png"
    folder.mkdir()
    with pytest.raises(InputImageError, match="is a directory"):
        load_grayscale(folder)
