"""The batch engine's pieces that need no model."""

from __future__ import annotations

from pathlib import Path

from edge_infer.batch import BatchResult, HeatmapWriter, source_name
from edge_infer.errors import InputImageError


def test_heatmap_names_are_unique_and_portable(tmp_path):
    w = HeatmapWriter(tmp_path / "maps")
    sources = ("a/knee.png", "b/knee.png", "<array 3>", "x/knee:1?.dcm", "c/knee.png")
    names = [w.write_png(s, s.encode()).name for s in sources]
    assert names == [
        "knee_gradcam.png",
        "knee_2_gradcam.png",
        "_array_3__gradcam.png",
        "knee_1__gradcam.png",
        "knee_3_gradcam.png",
    ]
    assert [(w.directory / n).read_bytes() for n in names] == [s.encode() for s in sources]


def test_sources_name_paths_arrays_and_a_callers_errors():
    assert source_name(Path("k.png"), 0) == "k.png"
    assert source_name(object(), 4) == "<array 4>"
    assert source_name(InputImageError("empty dir", "folder holds no image files"), 2) == "empty dir"


def test_a_failed_result_records_only_its_error():
    r = BatchResult("k.png", error="k.png: empty file")
    assert not r.ok and r.to_record() == {"input": "k.png", "error": "k.png: empty file"}
