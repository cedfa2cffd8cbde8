"""``kneeoa bench``: every (format, threads) row measured in its own process; a broken format is a
row with its error, not a crash."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from PIL import Image

from kneeoa.cli import main as kneeoa


def test_bench_rows_agreement_and_a_broken_format(model_dir, knee_dataset, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.int8.tflite").write_bytes(b"not a model")  # sha256 no longer matches
    out_json, out_png, out_md = tmp_path / "bench.json", tmp_path / "bench.png", tmp_path / "RESULTS.md"
    result = CliRunner().invoke(
        kneeoa,
        [
            "bench",
            "--model",
            str(broken),
            "--formats",
            "onnx-fp32,onnx-int8,tflite-int8",
            "--threads",
            "1",
            "--data",
            str(knee_dataset / "val"),
            "--min-time",
            "0.1",
            "--min-runs",
            "3",
            "--warmup",
            "1",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--markdown",
            str(out_md),
        ],
    )
    assert result.exit_code == 1  # a row failed
    report = json.loads(out_json.read_text())
    rows = {r["format"]: r for r in report["rows"]}
    assert list(rows) == ["onnx-fp32", "onnx-int8", "tflite-int8"]
    assert "sha256" in rows["tflite-int8"]["error"]
    good = rows["onnx-int8"]
    lat = good["latency"]
    assert 0 < lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"] and lat["runs"] >= 3
    assert good["rounds"] >= 5 and good["batch_size"] > 0
    for mode in ("end_to_end", "end_to_end_gradcam", "end_to_end_heatmap_png"):
        e2e = good[mode]  # per-round ratios: their median sits near the ratio of the medians (loosely:
        # rounds and the raw latency are timed at different moments, and CI machines are shared)
        assert e2e["median_ms"] > 0 and 0.2 < e2e["ratio_to_raw"] / (e2e["median_ms"] / lat["median_ms"]) < 5
    assert good["peak_rss_mb"] > 20
    assert good["accuracy"]["n"] == 20 and good["agreement_with"] == "onnx-fp32" and 0 <= good["agreement"] <= 1
    assert good["bytes"] == (model_dir / "model.int8.onnx").stat().st_size
    assert report["gflop_per_image"] > 0.1 and good["gflop_per_s"] > 0
    assert report["machine"]["logical_cores"] >= 1 and "onnxruntime" in report["machine"]["versions"]
    assert report["cold_start"][0]["ratio"] > 1
    assert "error: " in result.stdout and "onnx-int8" in result.stdout  # the table names both
    md = out_md.read_text()
    assert "| `onnx-int8` | 1 |" in md and "| `tflite-int8` | 1 | 0.0 | error:" in md
    assert [c["format"] for c in report["cold_start"]] == ["onnx-fp32"]  # one per engine that loads
    with Image.open(out_png) as im:
        assert im.width > 400
