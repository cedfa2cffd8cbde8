"""One knee stored at every bit depth and grey-level range a scanner, PACS or export tool might
use (for the intensity-contract tests): the same anatomy, different numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from reencode import _png16_with_sbit, dicom_12_bit, write_dicom

STORAGE_FORMS = (
    "png8",
    "png16_full",  # level × 257: the whole 16-bit range
    "png16_narrow",  # 30000 + 16 × level: 16-bit data in a narrow band, no sBIT
    "png12_narrow_sbit",  # 1500 + 2 × level: 12-bit data in a narrow band, sBIT 12
    "png12_narrow",  # the same without sBIT
    "tiff_float",  # 32-bit float, 0.1 + 0.3 × level / 255
    "dicom12_window",  # 12 bits stored, a window that displays it as the 8-bit knee
    "dicom12_window_mono1",  # MONOCHROME1 (bone dark in the stored values), with the window
    "dicom12_no_window",  # 12 bits in a narrow band, rescaled, no window
    "dicom12_no_window_mono1",  # MONOCHROME1, no window
)


def write_storage_form(knee: np.ndarray, form: str, folder: Path) -> Path:
    """Write the ``uint8`` ``knee`` as ``form`` (one of :data:`STORAGE_FORMS`); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    level = knee.astype(np.uint16)
    if form.startswith("dicom"):
        path = folder / f"{form}.dcm"
        if "no_window" in form:
            return _dicom_without_window(level, path, mono1=form.endswith("mono1"))
        return write_dicom(knee, path, "dicom_mono1" if form.endswith("mono1") else "dicom_mono2")
    path = folder / f"{form}.{'tif' if form.startswith('tiff') else 'png'}"
    if form == "png8":
        Image.fromarray(knee).save(path)
    elif form == "png16_full":
        Image.fromarray(level * 257).save(path)
    elif form == "png16_narrow":
        Image.fromarray(30000 + level * 16).save(path)
    elif form == "png12_narrow_sbit":
        _png16_with_sbit(1500 + level * 2, 12, path)
    elif form == "png12_narrow":
        Image.fromarray(1500 + level * 2).save(path)
    elif form == "tiff_float":
        Image.fromarray((0.1 + 0.3 * knee / 255.0).astype(np.float32), mode="F").save(path)
    else:
        raise ValueError(form)
    return path


def _dicom_without_window(level: np.ndarray, path: Path, mono1: bool) -> Path:
    """12 bits stored (``1000 + 3 × level``, a narrow band of 0..4095), modality value
    ``2 × stored - 1024``, and no window, VOI LUT or anything else saying how to display it."""
    stored = 1000 + level * 3
    ds = dicom_12_bit(level.shape, "MONOCHROME1" if mono1 else "MONOCHROME2")
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.PixelData = ((4095 - stored) if mono1 else stored).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
