"""Reading image files: any supported file (PNG, JPEG, TIFF, BMP, DICOM) → 2-D ``uint8`` grey at
its own resolution, plus notes on anything done beyond decoding. The first step of the
preprocessing contract (:mod:`edge_infer.preprocess` holds the rest)."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from .dicom import looks_like_dicom, read_dicom
from .errors import InputImageError

MIN_SIDE = 32
"""Smallest side, in pixels, that can still hold a knee joint."""


@dataclass(frozen=True)
class DecodedImage:
    """An image file, decoded.

    Attributes:
        gray: ``(height, width)`` ``uint8`` grey, as displayed: what a ``stored`` contract model
            takes, and what overlays draw on.
        levels: The same pixels at the file's own precision, bright meaning dense, when finer
            than 8 bits and not already windowed: a 16- or 32-bit integer image, a float image,
            or a DICOM's modality values when it holds no window or VOI LUT (MONOCHROME1
            negated). ``None`` for 8-bit files and windowed DICOMs, where ``gray`` is all there
            is. A ``percentile`` contract stretches these (:mod:`edge_infer.intensity`).
        notes: What was done beyond decoding (e.g. which DICOM frame or window was used).
    """

    gray: np.ndarray
    levels: np.ndarray | None = None
    notes: tuple[str, ...] = ()


def load_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2-D ``uint8`` grayscale array (see :func:`load_image`)."""
    return decode_image(path).gray


def load_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as 2-D ``uint8`` grey, and notes on anything done beyond decoding
    (:func:`decode_image`, without the full-precision levels)."""
    decoded = decode_image(path)
    return decoded.gray, list(decoded.notes)


def decode_image(path: str | Path) -> DecodedImage:
    """Read an image file: 2-D ``uint8`` grey, its full-precision levels when finer, and notes.

    The file is read once, bounded (:func:`read_image_bytes`), and decoded from those bytes.

    Args:
        path: PNG (8- or 16-bit, grey, RGB, RGBA, palette), JPEG (EXIF orientation honoured),
            TIFF (float and 32-bit integer too), BMP, or DICOM (recognised by its ``DICM``
            preamble or a ``.dcm`` ending; see :mod:`edge_infer.dicom`). Of a multi-frame file
            (GIF, TIFF, APNG, DICOM) the first frame is used, and a note says so.

    Raises:
        InputImageError: naming the file, when it is missing, a directory, not a regular file,
            empty, too large, not an image, truncated, larger than the decompression-bomb limit,
            too small, or of an aspect ratio no radiograph has.
    """
    p = Path(path)
    data = read_image_bytes(p)
    if looks_like_dicom(p, data[:132]):
        gray, levels, notes = read_dicom(p, data)
    else:
        gray, levels, notes = _read_with_pillow(p, data)
    check_shape(p, *gray.shape)
    return DecodedImage(gray, levels, tuple(notes))


MAX_FILE_BYTES = 256 * 2**20
"""Largest image file read (256 MiB): a knee radiograph is a few megabytes, a large uncompressed
DICOM film about 50."""

MAX_ASPECT = 8.0
"""Longest side over shortest beyond which an image is refused on reading, before any padding
(a 100000×32 image would otherwise be padded to a 100000² square). The input gate refuses far
milder ratios (:data:`edge_infer.gate.MAX_ASPECT`); this bound holds with the gate off too."""


def read_image_bytes(p: Path) -> bytes:
    """The whole file, read once: only a regular file (never a FIFO or device, which could block
    or never end), at most :data:`MAX_FILE_BYTES`.

    Raises:
        InputImageError: missing, a directory, not a regular file, unreadable, empty or too large.
    """
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputImageError(p, "no such file") from None
    except OSError as e:
        raise InputImageError(p, f"cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputImageError(p, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise InputImageError(p, "not a regular file (a FIFO, device or socket); only image files are read")
    try:  # O_NONBLOCK: a FIFO swapped in after the check must not block the open
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputImageError(p, "not a regular file (a FIFO, device or socket); only image files are read")
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InputImageError(p, f"cannot read ({e.strerror or e})") from None
    if not data:
        raise InputImageError(p, "empty file")
    if len(data) > MAX_FILE_BYTES:
        raise InputImageError(p, f"file too large (over {MAX_FILE_BYTES // 2**20} MiB); not a knee radiograph")
    return data


def check_shape(name: str | Path, h: int, w: int) -> None:
    """Refuse an image too small to hold a knee, or of an aspect ratio no radiograph has."""
    if min(h, w) < MIN_SIDE:
        raise InputImageError(name, f"image too small ({w}×{h} px); a knee needs at least {MIN_SIDE} px per side")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise InputImageError(name, f"a {w}×{h} image ({max(h, w) / min(h, w):.0f}:1) is no radiograph of a knee; "
                              f"refused before processing (aspect ratios over {MAX_ASPECT:.0f}:1 are)")  # fmt: skip


_WARNINGS_LOCK = threading.RLock()
"""``warnings.catch_warnings`` swaps process-wide state; training decodes from several threads,
and batches decode in a background thread. The lock orders the blocks that need the filters
(:func:`_pillow_warnings_handled`): header parsing, EXIF parsing, and the whole decode of formats
whose pixel decode may warn. A side effect is that, inside such a block, a ``UserWarning`` raised
in another thread is not shown. Re-entrant: the locked decode path nests the EXIF block."""


@contextlib.contextmanager
def _pillow_warnings_handled() -> Iterator[None]:
    """Silence Pillow's ``UserWarning``s about odd metadata (corrupt EXIF, TIFF tags; it still
    decodes) and raise its decompression-bomb warning as an error, under :data:`_WARNINGS_LOCK`."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


_QUIET_DECODE_FORMATS = ("PNG", "JPEG", "BMP")
"""Formats whose pixel decode (``load()``) runs without the warning filters, so decodes run in
parallel. Read in Pillow 13's source: JPEG's and BMP's ``load()`` neither warn nor check for
decompression bombs; PNG's runs the chunk handlers of the chunks after the image data (an
``acTL`` there warns), so a PNG qualifies only when ``IEND`` follows its image data
(:func:`_png_ends_after_image_data`). The others decode under the lock: TIFF checks its tile size
for bombs and parses tags while loading; GIF, ICO, ICNS and others check frame sizes."""

_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation → the transposition that displays the image upright (as ``ImageOps.exif_transpose``)."""


def _read_with_pillow(p: Path, data: bytes) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        with _pillow_warnings_handled():
            im = Image.open(io.BytesIO(data))  # header only: format, size and the decompression-bomb check
        with im:
            check_shape(p, im.height, im.width)  # before decoding a frame no knee has
            frames = getattr(im, "n_frames", 1)
            notes = [f"multi-frame {im.format}: used frame 1 of {frames}"] if frames > 1 else []
            if im.format in _QUIET_DECODE_FORMATS and (im.format != "PNG" or _png_ends_after_image_data(data)):
                return *_decode(im, data), notes
            with _pillow_warnings_handled():
                return *_decode(im, data), notes
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputImageError(p, f"image too large ({e})") from None
    except NonFinitePixels as e:
        raise InputImageError(p, str(e)) from None
    except UnidentifiedImageError:
        raise InputImageError(p, "not an image Pillow can read (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputImageError(p, f"unreadable or truncated image ({e})") from None


class NonFinitePixels(Exception):
    """A float image with NaN or infinite values: no grey level can stand for them."""


def _decode(im: Image.Image, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an opened image to grey and its full-precision levels (or ``None``), upright by its
    EXIF orientation (read after decoding, as a PNG may store its ``eXIf`` chunk after the pixels)."""
    im.load()
    with _pillow_warnings_handled():  # parsing EXIF warns on corrupt tags
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    if (method := _EXIF_TRANSPOSE.get(orientation)) is not None:
        im = im.transpose(method)
    high_bit_png = data.startswith(PNG_SIGNATURE) and im.mode.startswith("I")  # only 16-bit grey uses sBIT
    levels = pil_levels(im)
    if levels is not None and levels.dtype.kind == "f" and not np.isfinite(levels).all():
        raise NonFinitePixels(f"the image holds {int((~np.isfinite(levels)).sum())} NaN or infinite pixel values")
    significant_bits = _png_significant_bits(data) if high_bit_png else None
    return pil_to_gray(im, significant_bits=significant_bits, levels=levels), levels


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """A PNG's chunks as ``(type, data length)``, from after the signature to the end of the file;
    at each, ``f`` stands at the chunk's data."""
    pos = len(PNG_SIGNATURE)
    while True:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        yield kind, length
        pos += 12 + length  # length, type, data, CRC


def _png_significant_bits(data: bytes) -> int | None:
    """The grey channel's significant bits from a PNG's ``sBIT`` chunk (e.g. 12 for 12-bit data
    stored in 16), or ``None``; Pillow does not expose it."""
    with io.BytesIO(data) as f:
        for kind, length in _png_chunks(f):
            if kind == b"sBIT":
                data = f.read(min(length, 4))
                return data[0] if data else None
            if kind in (b"IDAT", b"IEND"):
                return None
    return None


def _png_ends_after_image_data(data: bytes) -> bool:
    """Whether ``IEND`` directly follows a PNG's image data (``IDAT`` chunks): then Pillow's decode
    calls no chunk handler, the only PNG code that can warn once the header is parsed."""
    with io.BytesIO(data) as f:
        in_image_data = False
        for kind, _ in _png_chunks(f):
            if kind == b"IDAT":
                in_image_data = True
            elif kind == b"IEND" or in_image_data:
                return kind == b"IEND" and in_image_data
    return False


HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""Pillow modes of integer grey finer than 8 bits."""


def pil_levels(im: Image.Image) -> np.ndarray | None:
    """A 16- or 32-bit integer or float grey image's own levels (native dtype), else ``None``."""
    if im.mode in HIGH_BIT_MODES or im.mode == "F":
        return np.asarray(im)
    return None


def pil_to_gray(im: Image.Image, significant_bits: int | None = None, levels: np.ndarray | None = None) -> np.ndarray:
    """Any Pillow image as 2-D ``uint8`` grey; transparency is composited onto black.

    16-bit grey is scaled from ``significant_bits`` (a PNG's ``sBIT``) when given; otherwise from
    the smallest of 8, 12 or 16 bits that holds the image's maximum. ``levels``: the image's
    :func:`pil_levels`, when already taken.
    """
    if im.mode in HIGH_BIT_MODES:
        arr = np.asarray(im if levels is None else levels, dtype=np.float64)
        if significant_bits and 8 <= significant_bits <= 16 and arr.max() < 2**significant_bits:
            top = 2.0**significant_bits - 1
        else:
            top = next(2.0**b - 1 for b in (8, 12, 16, 32) if arr.max() < 2**b)
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if im.mode == "F":
        arr = np.asarray(im if levels is None else levels, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.rint(scaled).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, rgba)
    return np.asarray(im.convert("L"), dtype=np.uint8).copy()
