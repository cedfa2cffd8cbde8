"""The heatmap overlay shared by ``edge-infer --heatmap-dir`` and the web app: weak evidence leaves
the radiograph untouched, strong evidence tints it without hiding the bone, and a legend explains
the colours."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.overlay import DEFAULT_FLOOR, DEFAULT_OPACITY, heatmap_figure, legend, level_tables, overlay


def test_the_radiograph_is_untouched_up_to_the_floor():
    gray = np.tile(np.arange(0, 250, 2, dtype=np.uint8), (50, 1))
    cam = np.tile(np.linspace(0.0, 1.0, gray.shape[1], dtype=np.float32), (50, 1))
    rgb = overlay(gray, cam)
    assert rgb.shape == (*gray.shape, 3) and rgb.dtype == np.uint8
    weak = cam <= DEFAULT_FLOOR
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel][weak], gray[weak])
    hot = cam > 0.9
    assert np.all(np.ptp(rgb[hot].astype(int), axis=1) > 20)  # coloured, not grey, where the map is strong


def test_colour_weight_follows_the_activation():
    alpha, colors = level_tables(0.8, 0.25)
    assert np.all(np.diff(alpha) >= 0)
    assert np.all(alpha[: int(0.25 * 255)] == 0) and alpha[-1] == pytest.approx(0.8)
    assert colors.shape == (256, 3)
    gray = np.full((4, 4), 100, np.uint8)
    rgb = overlay(gray, np.ones((4, 4), np.float32), opacity=0.8, floor=0.25)
    expected = np.floor(100 * 0.2 + colors[-1] * 0.8 + 0.5)
    np.testing.assert_allclose(rgb[0, 0], expected, atol=1)


def test_bone_detail_stays_readable_under_the_strongest_evidence():
    """Fine stripes (trabecular detail) under the map's peak keep at least 1 - opacity of their contrast."""
    gray = np.tile(np.array([100, 140], np.uint8), (8, 8))
    rgb = overlay(gray, np.ones(gray.shape, np.float32)).astype(float)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    contrast = np.abs(np.diff(luminance, axis=1)).min()
    assert contrast >= (1 - DEFAULT_OPACITY) * 40 - 1


def test_opacity_zero_shows_the_plain_image():
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    cam = np.random.default_rng(1).random((20, 30)).astype(np.float32)
    rgb = overlay(gray, cam, opacity=0.0)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


@pytest.mark.parametrize("height", [32, 224, 1500])
def test_the_legend_shows_the_scale_from_untouched_to_the_peak(height):
    strip = legend(height, 1.0, 0.3)
    assert strip.shape[0] == height and strip.shape[2] == 3 and 10 < strip.shape[1] < height
    bar_column = next(x for x in range(strip.shape[1]) if np.ptp(strip[:, x].astype(int)) > 50)
    bar = strip[:, bar_column + 2].astype(int)
    rows = bar[np.flatnonzero(bar.any(axis=1))]  # the bar, top (peak) to bottom (zero)
    assert rows[0][0] > 200 and rows[0][1] > 200 and rows[0][2] < 100  # the peak: viridis yellow at full opacity
    below_floor = rows[-int(len(rows) * 0.25) :]
    assert len(below_floor) and np.all(below_floor == 128)  # below the floor: plain grey bone
    assert strip[:, -strip.shape[1] // 2 :].max() > 200  # the labels


def test_the_figure_is_the_overlay_with_its_legend_beside_it():
    gray = np.random.default_rng(2).integers(0, 256, (64, 80), dtype=np.uint8)
    cam = np.random.default_rng(3).random((64, 80)).astype(np.float32)
    figure = heatmap_figure(gray, cam, opacity=0.4)
    np.testing.assert_array_equal(figure[:, :80], overlay(gray, cam, opacity=0.4))
    np.testing.assert_array_equal(figure[:, 80:], legend(64, 0.4))


def test_bad_arguments_are_refused():
    gray = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"opacity must be in \[0, 1\], got 1.5"):
        overlay(gray, np.zeros((8, 8), np.float32), opacity=1.5)
    with pytest.raises(ValueError, match=r"floor must be in \[0, 1\), got 1.0"):
        overlay(gray, np.zeros((8, 8), np.float32), floor=1.0)
    with pytest.raises(ValueError, match=r"image and map differ in shape: \(8, 8\) and \(8, 9\)"):
        overlay(gray, np.zeros((8, 9), np.float32))
