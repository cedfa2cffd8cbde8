"""Uploaded files in, the batch engine's results out, and the two downloads built from them.

No Streamlit here: the page (:mod:`kneeoa_app.page`) only shows what :func:`screen_uploads` returns.
Each upload runs through :func:`edge_infer.batch.run_batch`, the engine behind ``edge-infer``, so a
record here is the record ``edge-infer --output`` writes for the same file, with two differences
a person expects: ``input`` is the file's name as uploaded (not a server path) and ``heatmap`` is
the overlay's name inside the heatmap zip.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_infer.batch import BatchResult, HeatmapWriter, run_batch
from edge_infer.classifier import Classifier
from edge_infer.output import ResultFile


@dataclass(frozen=True)
class Upload:
    """One uploaded file.

    Attributes:
        name: The file's name as the browser sent it (shown, never used as a path).
        data: Its bytes.
    """

    name: str
    data: bytes


@dataclass(frozen=True)
class Screened:
    """What became of one upload.

    Attributes:
        result: The batch engine's result; ``source`` is the upload's name, ``heatmap`` the
            overlay's name in the zip (graded uploads only).
        seconds: Decoding, the input gate, inference and Grad-CAM, for this file alone.
        heatmap_png: The overlay PNG ``edge-infer --heatmap-dir`` would write, for graded uploads.
    """

    result: BatchResult
    seconds: float
    heatmap_png: bytes | None = None

    @property
    def name(self) -> str:
        return self.result.source


def screen_uploads(
    classifier: Classifier, uploads: Sequence[Upload], lock: threading.Lock | None = None
) -> list[Screened]:
    """Grade each upload, one at a time and in order, with its Grad-CAM.

    Each file is written to a private temporary folder (the decoders read files: DICOM, TIFF, …),
    graded, and deleted with the folder before this returns. A file that cannot be read or that
    the input gate refuses gets its reason and no grade, and the others go on.

    Args:
        classifier: The loaded model.
        uploads: The files, in the order to show them.
        lock: Held while the runtime runs: one classifier serves every browser session of the
            process, and a LiteRT interpreter must not run two images at once.

    Returns:
        One :class:`Screened` per upload, in the same order.
    """
    lock = lock or threading.Lock()
    screened = []
    with tempfile.TemporaryDirectory(prefix="kneeoa-app-") as tmp:
        heatmaps = HeatmapWriter(Path(tmp) / "heatmaps")
        for index, upload in enumerate(uploads):
            path = Path(tmp) / str(index) / safe_file_name(upload.name)
            path.parent.mkdir()
            path.write_bytes(upload.data)
            with lock:
                start = time.perf_counter()
                (result,) = run_batch(classifier, [path], heatmap=True, prefetch=0)
                seconds = time.perf_counter() - start
            if result.source != str(path):  # one file in, its own result out: never another patient's
                raise RuntimeError(f"the batch engine answered for {result.source}, not {path}")
            screened.append(_as_uploaded(result, path, upload.name, heatmaps, seconds))
    return screened


def _as_uploaded(result: BatchResult, path: Path, name: str, heatmaps: HeatmapWriter, seconds: float) -> Screened:
    """The result named as the person uploaded it, with its overlay PNG when graded."""
    error = result.error.replace(str(path), name) if result.error else None
    renamed = dataclasses.replace(result, source=name, error=error)
    if result.prediction is None:
        return Screened(renamed, seconds)
    target = heatmaps.write(name, result.prediction)  # <name>_gradcam.png, numbered when a name repeats
    return Screened(dataclasses.replace(renamed, heatmap=target.name), seconds, target.read_bytes())


def safe_file_name(name: str) -> str:
    """A portable file name for an upload's temporary copy: its last path part, characters other
    than letters, digits, ``.``, ``-`` and ``_`` replaced (the browser's name is not trusted as a path)."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^\w.-]", "_", base, flags=re.ASCII).lstrip(".")[-120:]
    return cleaned or "upload"


def records(screened: Sequence[Screened]) -> list[dict]:
    """The records ``edge-infer --json`` prints, one per upload, in order."""
    return [s.result.to_record() for s in screened]


def results_csv(screened: Sequence[Screened], classes: list[str]) -> bytes:
    """The CSV ``edge-infer --output results.csv`` writes, for these uploads (written by the same
    :class:`edge_infer.output.ResultFile`)."""
    with tempfile.TemporaryDirectory(prefix="kneeoa-app-") as tmp:
        path = Path(tmp) / "results.csv"
        out = ResultFile(path, classes)
        try:
            for record in records(screened):
                out.write(record)
        finally:
            out.close()
        return path.read_bytes()


def heatmaps_zip(screened: Sequence[Screened]) -> bytes:
    """A zip of the graded uploads' overlays, each under the name its record gives."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for s in screened:
            if s.heatmap_png is not None:
                zf.writestr(s.result.heatmap, s.heatmap_png)
    return buffer.getvalue()


def summary_table(screened: Sequence[Screened]) -> dict[str, list]:
    """Columns of the summary table: one row per upload, in upload order."""
    rows = []
    for s in screened:
        p = s.result.prediction
        rows.append({
            "file": s.name,
            "status": s.result.status,
            "KL grade": p.kl_grade if p else None,
            "screening": p.label if p else None,
            "P(OA)": round(p.oa_probability, 3) if p and p.oa_probability is not None else None,
            "seconds": round(s.seconds, 3),
            "reason": s.result.refusal or s.result.error or "",
        })  # fmt: skip
    return {key: [row[key] for row in rows] for key in (rows[0] if rows else ())}
