"""One knee image written every way a hospital or a phone might store it (for the robustness tests)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

LOSSLESS = (
    "png8",
    "png16",
    "png16_sbit12",
    "rgb",
    "rgba",
    "palette",
    "tiff",
    "bmp",
    "jpeg_exif_rotated_lossless",
    "dicom_mono2",
    "dicom_mono1",
    "dicom_rescaled",
    "dicom_rle",
    "dicom_j2k",
    "dicom_jpegls",
    "dicom_multiframe",
)
LOSSY = ("jpeg_q95", "upscaled_4x", "dicom_jpeg_baseline")


def write_encoding(gray: np.ndarray, kind: str, folder: Path) -> Path:
    """Write ``gray`` (``uint8``) as ``kind``; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind.startswith("dicom"):
        return write_dicom(gray, folder / f"{kind}.dcm", kind)
    path = folder / f"{kind}.{_suffix(kind)}"
    if kind == "png8":
        Image.fromarray(gray).save(path)
    elif kind == "png16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # full 16-bit range
    elif kind == "png16_sbit12":
        _png16_with_sbit(gray.astype(np.uint16) * 16, 12, path)  # 12-bit detector data, values ≤ 4080
    elif kind == "rgb":
        Image.fromarray(np.stack([gray] * 3, -1)).save(path)
    elif kind == "rgba":
        Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)])).save(path)
    elif kind == "palette":
        Image.fromarray(gray).convert("P").save(path)
    elif kind in ("tiff", "bmp"):
        Image.fromarray(gray).save(path)
    elif kind == "jpeg_exif_rotated_lossless":
        # Stored rotated 90° (as a phone would), with EXIF orientation 6 asking viewers to rotate
        # it back; quality 100 keeps it within rounding of the original.
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(np.rot90(gray, 1)).save(path, quality=100, subsampling=0, exif=exif)
    elif kind == "jpeg_q95":
        Image.fromarray(gray).save(path, quality=95)
    elif kind == "upscaled_4x":
        Image.fromarray(gray).resize((gray.shape[1] * 4, gray.shape[0] * 4), Image.Resampling.BICUBIC).save(path)
    else:
        raise ValueError(kind)
    return path


def _suffix(kind: str) -> str:
    return {"tiff": "tif", "bmp": "bmp"}.get(kind, "jpg" if kind.startswith("jpeg") else "png")


def _png16_with_sbit(arr: np.ndarray, bits: int, path: Path) -> None:
    import struct
    import zlib

    Image.fromarray(arr).save(path)
    data = path.read_bytes()
    chunk = b"sBIT" + bytes([bits])
    sbit = struct.pack(">I", 1) + chunk + struct.pack(">I", zlib.crc32(chunk))
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    path.write_bytes(data[:ihdr_end] + sbit + data[ihdr_end:])


def dicom_12_bit(shape: tuple[int, int], photometric: str = "MONOCHROME2"):
    """An uncompressed DX secondary-capture dataset, 12 bits stored in 16, without pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, (ds.Rows, ds.Columns) = "DX", shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def write_dicom(gray: np.ndarray, path: Path, kind: str = "dicom_mono2") -> Path:
    """A DX-like DICOM: 12 bits stored in 16, with a window that maps it back to ``gray`` exactly."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        JPEGLSLossless,
        RLELossless,
    )

    stored = gray.astype(np.uint16) * 16  # 0..4080
    ds = dicom_12_bit(gray.shape)
    ds.PatientName, ds.PatientID = "Test^Knee", "PID-0001"
    # y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255 = x / 16 with w = 4081, c = 2040.5
    ds.WindowCenter, ds.WindowWidth = 2040.5, 4081
    if kind == "dicom_mono1":
        stored = 4080 - stored
        ds.PhotometricInterpretation = "MONOCHROME1"
    elif kind == "dicom_rescaled":
        # Stored values with a rescale: modality value = 2 * stored - 1000; the window is in modality units.
        stored = (stored + 1000) // 2
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
        stored_back = stored.astype(np.int64) * 2 - 1000
        assert (stored_back == gray.astype(np.int64) * 16).all()
    if kind == "dicom_multiframe":
        ds.NumberOfFrames = 2
        ds.PixelData = np.stack([stored, 4080 - stored]).astype(np.uint16).tobytes()
    else:
        ds.PixelData = stored.astype(np.uint16).tobytes()
    if kind == "dicom_rle":
        ds.compress(RLELossless)
    elif kind == "dicom_j2k":
        ds.compress(JPEG2000Lossless)
    elif kind == "dicom_jpegls":
        ds.compress(JPEGLSLossless)  # encoder: pyjpegls (a test dependency); decoder: the dicom extra
    elif kind == "dicom_jpeg_baseline":  # 8-bit lossy JPEG, as many PACS exports are
        buf = io.BytesIO()
        Image.fromarray(gray).save(buf, "JPEG", quality=95)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.WindowCenter, ds.WindowWidth = 128, 256  # identity on 0..255
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path, enforce_file_format=True)
    return path
