"""Broken and non-image files of every kind a clinic's folder can hold, each with the problem its
one-line error must name; shared by the decoding tests and the batch tests."""

from __future__ import annotations

from PIL import Image

from reencode import write_dicom, write_encoding
from synthetic import synthetic_knee

KNEE = synthetic_knee(3, 160, seed=4)
"""The knee every encoding test stores."""


def rt_plan(path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RTPlanStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = RTPlanStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientID = "PID-0001"
    ds.save_as(path, enforce_file_format=True)
    return path


def bad_files(tmp_path):
    good_png = write_encoding(KNEE, "png8", tmp_path / "src")
    good_dcm = write_dicom(KNEE, tmp_path / "src" / "good.dcm")
    (tmp_path / "dir.png").mkdir()
    files = {
        "empty.png": (b"", "empty file"),
        "text.png": (b"hello, not an image\n" * 20, "not an image Pillow can read"),
        "truncated.png": (good_png.read_bytes()[:400], "truncated"),
        "corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "unreadable or truncated|not an image"),
        "truncated.dcm": (good_dcm.read_bytes()[:1200], "DICOM"),
        "text.dcm": (b"just text " * 40, "not a readable DICOM"),
        "tiny.png": (None, "too small"),
    }
    out = {}
    for name, (data, problem) in files.items():
        path = tmp_path / name
        if data is None:
            Image.fromarray(KNEE[:20, :20]).save(path)
        else:
            path.write_bytes(data)
        out[path] = problem
    out[tmp_path / "dir.png"] = "is a directory"
    out[tmp_path / "missing.png"] = "no such file"
    out[rt_plan(tmp_path / "plan.dcm")] = r"without pixel data \(RT Plan Storage\)"
    return out
