"""``kneeoa bench``: size, load time, latency, end-to-end throughput, peak memory and accuracy of
every format of a model, on the machine it runs on, with the runtime-only install.

Each (format, threads) row is measured in its own Python process, so load time is a cold load,
peak RSS is that format's alone, and a format that fails to load becomes a row with its error.
The optional Keras row (``--keras``) needs TensorFlow and is the float32 reference.

Timings use ``time.perf_counter``. Latency is the raw runtime invoke on one preprocessed image
(batch 1) after a warm-up, for at least ``min_time`` seconds of raw calls and ``min_runs`` calls.
End to end is the time per knee of a batch of files run as ``edge-infer`` runs it (decode ahead in
a thread, preprocess, infer, the result record); then through ``predict_many`` with Grad-CAM; then
as ``edge-infer --heatmap-dir`` (writing heatmap PNGs), measured in rounds that alternate with the
raw invoke (see :func:`_interleaved_rounds`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_infer.metrics import top1_agreement

from .machine import machine_info
from .measure import cold_start, sample_images

WORKER = "kneeoa_bench.measure"


def _worker_call(kind: str, args: dict, timeout: float) -> dict:
    """Run one measurement in a fresh interpreter; a failure becomes ``{"error": ...}``."""
    cmd = [sys.executable, "-m", WORKER, kind, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(
    model_dir: str | Path,
    formats: list[str] | None = None,
    threads: list[int] | None = None,
    data: str | Path | None = None,
    keras_model: str | Path | None = None,
    min_time: float = 2.0,
    min_runs: int = 20,
    warmup: int = 10,
    images: int = 32,
    cold_start_repeats: int = 5,
    progress=lambda message: None,
    timeout: float = 1800,
) -> dict:
    """Measure every (format, threads) row in its own process and return the whole report."""
    from edge_infer.manifest import load_manifest

    m = load_manifest(model_dir)
    formats = formats or list(m.artifacts)
    threads = threads or sorted({1, os.cpu_count() or 1})
    report = {
        "cold_start_repeats": cold_start_repeats,
        "model": m.name,
        "model_dir": str(m.model_dir),
        "input_size": m.preprocess.size,
        "created": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(),
        "settings": {
            "min_time_s": min_time,
            "min_runs": min_runs,
            "warmup": warmup,
            "threads": threads,
            "data": str(data) if data else None,
        },
        "rows": [],
        "cold_start": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        samples = sample_images(str(data) if data else None, images, Path(tmp))
        jobs = [("keras", t) for t in threads if keras_model] + [(f, t) for f in formats for t in threads]
        for i, (name, t) in enumerate(jobs, 1):
            progress(f"[{i}/{len(jobs)}] {name}, {t} thread{'s' * (t > 1)}")
            common = {
                "threads": t,
                "images": samples,
                "min_time": min_time,
                "min_runs": min_runs,
                "warmup": warmup,
                "data": str(data) if data and t == threads[0] else None,  # accuracy once per format
            }
            report["rows"].append(_row(m, name, common, keras_model, timeout) | {"threads": t})
        report["cold_start"] = _cold_starts(m, formats, report["rows"], samples[0], cold_start_repeats, progress)
    _agreement(report)
    _floor(report, m)
    return report


def _row(m, name: str, common: dict, keras_model, timeout: float) -> dict:
    """One row measured in its own process: the Keras reference, or a format of the model."""
    if name == "keras":
        row = _worker_call("keras", common | {"keras_model": str(keras_model), "model_dir": str(m.model_dir)}, timeout)
        return row | {"format": "keras", "precision": "float32 (TensorFlow)", "bytes": Path(keras_model).stat().st_size}
    row = _worker_call("format", common | {"model_dir": str(m.model_dir), "fmt": name}, timeout)
    art = m.artifacts.get(name)
    return row | {
        "format": name,
        "precision": art.format.precision if art else None,
        "bytes": (m.model_dir / art.file).stat().st_size if art else None,
    }


def _cold_starts(m, formats: list[str], rows: list[dict], image: str, repeats: int, progress) -> list[dict]:
    """One whole-process cold start per engine, for formats that loaded."""
    ok = {r["format"] for r in rows if "error" not in r}
    engines = {}
    for fmt in (f for f in formats if f in m.artifacts and f in ok):
        engines.setdefault(m.artifacts[fmt].format.engine, fmt)
    out = []
    for fmt in engines.values():
        progress(f"cold start: edge-infer --format {fmt}")
        try:
            out.append(cold_start(str(m.model_dir), fmt, image, repeats))
        except (subprocess.SubprocessError, OSError) as e:
            out.append({"format": fmt, "error": str(e)})
    return out


def _agreement(report: dict) -> None:
    """Top-1 agreement of each row's predictions with the float32 reference (Keras, else an fp32 format)."""
    preds = {id(r): r.pop("predictions") for r in report["rows"] if "predictions" in r}
    rows = [r for r in report["rows"] if id(r) in preds]
    ref = next((r for r in rows if r["format"] == "keras"), None) or next(
        (r for r in rows if "fp32" in r["format"]), None
    )
    if ref is None:
        return
    theirs = preds[id(ref)]
    for r in rows:
        if r is ref:
            continue
        common = sorted(preds[id(r)].keys() & theirs.keys())
        r["agreement_with"] = ref["format"]
        r["agreement"] = top1_agreement([preds[id(r)][k] for k in common], [theirs[k] for k in common])


def _floor(report: dict, m) -> None:
    """The work per image (from the manifest) and the rate each row achieves, against the CPU's
    nominal float32 peak per thread (clock × FLOP per cycle of its widest FMA)."""
    gflop = (m.data.get("compute") or {}).get("gflop_per_image")
    report["gflop_per_image"] = gflop
    mi = report["machine"]
    simd = set(mi["simd"])
    per_cycle = 64 if "avx512f" in simd else 32 if {"avx2", "fma"} <= simd else 16 if "asimd" in simd else 8
    report["nominal_fp32_gflops_per_thread"] = mi["mhz"] / 1e3 * per_cycle if mi.get("mhz") else None
    for r in report["rows"]:
        lat = r.get("latency", {}).get("median_ms")
        if lat and gflop:
            r["gflop_per_s"] = gflop / (lat / 1e3)
