"""DICOM radiographs to 8-bit grey, the way a reading workstation would display them.

Pipeline (DICOM PS3.3 C.11): decode the first frame → Modality LUT (rescale slope/intercept) →
VOI (VOI LUT sequence, else window centre/width with its VOI LUT function, else a robust
0.5–99.5 percentile window) → 0..255 → invert for MONOCHROME1. Without a window the modality
values are kept too, so a ``percentile`` contract stretches them, not their 8-bit display. Compressed transfer syntaxes decode
through pydicom's plugins (the ``dicom`` extra installs pylibjpeg with its JPEG, JPEG-LS,
JPEG 2000 and RLE decoders). Patient and study identifiers are never read into results.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import InputImageError

DICOM_SUFFIXES = (".dcm", ".dicom")
MAX_DICOM_PIXELS = 89_478_485
"""Largest frame decoded (rows × columns), Pillow's decompression-bomb limit: a knee radiograph
is a few megapixels."""
PERCENTILE_WINDOW = (0.5, 99.5)
INSTALL_HINT = 'DICOM needs pydicom: pip install "kneeoa[dicom]"'


def looks_like_dicom(path: Path, head: bytes) -> bool:
    """``DICM`` at byte 128 (the standard preamble), or a DICOM file ending."""
    return head[128:132] == b"DICM" or path.suffix.lower() in DICOM_SUFFIXES


def read_dicom(path: Path, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The first frame of a DICOM image as ``uint8`` grey, its full-precision levels, and notes.

    The levels are the modality values (MONOCHROME1 negated, so bright means dense) when the
    file holds no window or VOI LUT; with one, the window defines the display and the levels
    are ``None``.

    Args:
        path: The file (named in errors; read when ``data`` is not given).
        data: The file's bytes, already read (:func:`edge_infer.decode.read_image_bytes`).

    Raises:
        InputImageError: pydicom is missing, the file is not DICOM or is truncated, holds no
            pixel data (RT plan, structured report…), is too large, or cannot be decoded.
    """
    try:
        import pydicom
        from pydicom import pixels
    except ImportError:
        raise InputImageError(path, INSTALL_HINT) from None
    if data is None:
        data = Path(path).read_bytes()
    ds = _read_dataset(path, data, pydicom)
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    except (AttributeError, TypeError, ValueError) as e:
        raise InputImageError(path, f"DICOM image attributes missing or invalid ({e})") from None
    if rows * cols > MAX_DICOM_PIXELS:
        raise InputImageError(path, f"DICOM image too large ({cols}×{rows} px > {MAX_DICOM_PIXELS} pixels)")
    notes = []
    frame = _first_frame(path, ds, frames, pixels)
    if frames > 1:
        notes.append(f"multi-frame DICOM: used frame 1 of {frames}")
    if frame.ndim == 3:  # colour (RGB after pydicom's YBR conversion): luminance
        frame = frame[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        notes.append(f"colour DICOM ({photometric}) converted to grey")
        photometric = "MONOCHROME2"
    try:
        gray, levels, how = _display_values(np.asarray(frame), ds, pixels)
    except Exception as e:  # malformed LUT or window elements: pydicom raises many types
        raise InputImageError(path, f"invalid DICOM modality/VOI LUT or window ({_brief(e)})") from None
    if how:
        notes.append(how)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
        levels = None if levels is None else -levels
    return gray, levels, notes


def _read_dataset(path: Path, data: bytes, pydicom):
    """The parsed file; refuses what is not DICOM, or is DICOM without an image."""
    head = data[:132]
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=path.suffix.lower() in DICOM_SUFFIXES, stop_before_pixels=False)
    except Exception as e:  # InvalidDicomError, EOFError, struct.error, ...: pydicom has no single base
        raise InputImageError(path, f"not a readable DICOM file ({type(e).__name__}: {e})") from None
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if head[128:132] != b"DICM" and not has_pixels and "SOPClassUID" not in ds:
        raise InputImageError(path, "not a readable DICOM file (no DICM preamble and no DICOM image elements)")
    if not has_pixels:
        kind = getattr(getattr(ds, "SOPClassUID", None), "name", None) or "unknown SOP class"
        raise InputImageError(path, f"DICOM without pixel data ({kind}); not an image")
    return ds


def _first_frame(path: Path, ds, frames: int, pixels) -> np.ndarray:
    try:
        return pixels.pixel_array(ds, index=0 if frames > 1 else None)
    except (ImportError, RuntimeError, NotImplementedError) as e:
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        name = getattr(syntax, "name", "this transfer syntax")
        message = f"cannot decode {name} pixel data ({' '.join(str(e).split())[:160]}); "
        raise InputImageError(path, message + 'pip install "kneeoa[dicom]" adds the decoders') from None
    except Exception as e:  # truncated or inconsistent pixel data
        raise InputImageError(path, f"DICOM pixel data unreadable ({_brief(e)})") from None


def _brief(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"


def _display_values(arr: np.ndarray, ds, pixels) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Modality LUT, then VOI, then 0..255; and the modality values when no VOI was given."""
    values = pixels.apply_modality_lut(arr, ds).astype(np.float64)
    if not np.isfinite(values).all():  # a NaN or infinite rescale slope/intercept: no usable image
        raise ValueError("rescale slope/intercept give non-finite values")
    if "VOILUTSequence" in ds:
        out = pixels.apply_voi(values.astype(np.int64) if values.dtype.kind == "f" else values, ds, index=0)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2]) or 16
        return _to_uint8(out.astype(np.float64) / (2**bits - 1)), None, None
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is not None and width is not None and width > 0:
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        return _to_uint8(_window(values, centre, width, function)), None, None
    lo, hi = np.percentile(values, PERCENTILE_WINDOW)
    if hi <= lo:
        return np.zeros(values.shape, np.uint8), None, "constant DICOM image"
    note = "no window in the DICOM; used its 0.5-99.5 percentile range"
    return _to_uint8((values - lo) / (hi - lo)), values.astype(np.float32), note  # float32: exact for 24-bit data


def _window(x: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing to [0, 1]."""
    if function == "LINEAR_EXACT":
        return (x - centre) / width + 0.5
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - centre) / width))
    if width <= 1:
        return (x >= centre).astype(np.float64)
    return (x - (centre - 0.5)) / (width - 1) + 0.5


def _first(value) -> float | None:
    """A window value may be multi-valued (alternative views): take the first."""
    if value is None:
        return None
    try:
        return float(value) if isinstance(value, (int, float)) else float(value[0])
    except (TypeError, ValueError, IndexError):
        return None


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
