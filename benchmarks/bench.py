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
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

WORKER = "benchmarks.bench"


def machine_info() -> dict:
    """CPU model, cores, the SIMD features that decide int8/float speed, OS and package versions."""
    cpu, flags, mhz = platform.processor() or platform.machine(), set(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and cpu in ("", platform.machine(), platform.processor()):
                cpu = value.strip()
            elif key in ("flags", "features"):
                flags |= set(value.split())
            elif key == "cpu mhz" and mhz is None:
                mhz = float(value)
    except OSError:
        pass
    interesting = ["avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimd", "asimddp", "i8mm", "sve"]
    versions = {}
    for dist in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "numpy", "pillow", "tensorflow", "tensorflow-cpu"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "mhz": mhz,
        "simd": [f for f in interesting if f in flags],
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def _percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "runs": len(ms)}


def _repeat(fn, min_time: float, min_runs: int) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def measure_format(model_dir: str, fmt: str, threads: int, images: list[str], min_time: float,
                   min_runs: int, warmup: int, data: str | None) -> dict:
    """One row, in this process: load, first inference, latency, end to end, peak RSS, accuracy."""
    from edge_infer.classifier import Classifier
    from edge_infer.formats import FORMATS, Engine
    from edge_infer.preprocess import load_grayscale, prepare_gray, to_model_input
    from edge_infer.runtimes import _litert_interpreter_class

    # Load time is the model's (checksum, session or interpreter, warm-up), not the engine's import.
    if FORMATS[fmt].engine is Engine.ONNXRUNTIME:
        import onnxruntime  # noqa: F401
    else:
        _litert_interpreter_class()
    t = time.perf_counter()
    clf = Classifier(model_dir, format=fmt, threads=threads)
    load_s = time.perf_counter() - t
    spec = clf.manifest.preprocess
    x = to_model_input(prepare_gray(load_grayscale(images[0]), spec)[0], spec)
    t = time.perf_counter()
    clf.runtime.run(x)
    first_s = time.perf_counter() - t
    for _ in range(warmup):
        clf.runtime.run(x)
    row = {"load_ms": load_s * 1e3, "first_ms": first_s * 1e3}
    row.update(_interleaved_rounds(clf, x, images, min_time, min_runs))
    row["peak_rss_mb"] = _peak_rss_mb()  # before the accuracy pass, which holds a whole data set
    clf.close()
    if data:
        from kneeoa.evaluate import evaluate

        result = evaluate(data, model_dir, fmt, threads)
        s = result["summary"]
        row["accuracy"] = {k: s.get(k) for k in ("n", "accuracy", "quadratic_weighted_kappa")} | {
            "screening_auc": (s.get("screening") or {}).get("auc"), "failed": len(result["failed"])}
        row["predictions"] = {r["input"]: r["predicted"] for r in result["predictions"]}
    return row


def _interleaved_rounds(clf, x, images: list[str], min_time: float, min_runs: int, min_rounds: int = 5) -> dict:
    """Raw invoke and the three batch modes, measured in alternating rounds.

    A round is: ``len(images)`` raw invokes of one preprocessed image; the same images as one
    ``edge-infer`` batch (:func:`edge_infer.cli.run_batch`: decode ahead, infer, records); the batch
    through ``Classifier.predict_many(heatmap=True)``, which also computes each Grad-CAM map; and
    the ``edge-infer --heatmap-dir`` batch, which also writes the overlay PNGs. Rounds go on until
    the raw invokes alone add up to ``min_time``. Each ratio to raw is the median over rounds of
    that round's ratio, so the slow drifts of a shared machine, which move both sides of a round
    together, cancel out.
    """
    from edge_infer.cli import HeatmapWriter, run_batch

    def batch(mode: str, folder: str) -> float:
        writer = HeatmapWriter(Path(folder)) if mode == "png" else None
        t = time.perf_counter()
        if mode == "cam":
            for _, result in clf.predict_many(images, heatmap=True):
                if isinstance(result, Exception):
                    raise result
        else:
            for source, outcome in run_batch(clf, [Path(p) for p in images], writer):
                if isinstance(outcome, str):
                    raise RuntimeError(outcome)
        return (time.perf_counter() - t) / len(images)

    modes = {"end_to_end": "plain", "end_to_end_gradcam": "cam", "end_to_end_heatmap_png": "png"}
    raw: list[float] = []
    per_round: dict[str, list[float]] = {"raw": [], **{k: [] for k in modes}}
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes.values():  # warm-up: page cache, thread pools, first-use imports
            batch(mode, folder)
        while len(per_round["raw"]) < min_rounds or len(raw) < min_runs or sum(raw) < min_time:
            block = []
            for _ in images:
                t = time.perf_counter()
                clf.runtime.run(x)
                block.append(time.perf_counter() - t)
            raw += block
            per_round["raw"].append(sum(block) / len(block))
            for key, mode in modes.items():
                per_round[key].append(batch(mode, folder))
    base = np.asarray(per_round["raw"])
    out = {"latency": _percentiles(raw), "rounds": len(base), "batch_size": len(images)}
    for key in modes:
        knee = np.asarray(per_round[key])
        out[key] = {"median_ms": float(np.median(knee) * 1e3), "images_per_s": float(1 / np.median(knee)),
                    "ratio_to_raw": float(np.median(knee / base))}
    return out


def measure_keras(keras_model: str, threads: int, images: list[str], min_time: float, min_runs: int,
                  warmup: int, data: str | None, size: int) -> dict:
    """The float32 Keras model in TensorFlow (``model.predict``), the reference the formats come from."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t = time.perf_counter()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.saving.load_model(keras_model, compile=False)
    load_s = time.perf_counter() - t
    from edge_infer.preprocess import PreprocessSpec, load_grayscale, prepare_gray, to_model_input

    spec = PreprocessSpec(size)
    x = to_model_input(prepare_gray(load_grayscale(images[0]), size)[0], spec)
    t = time.perf_counter()
    model.predict(x, verbose=0)
    first_s = time.perf_counter() - t
    for _ in range(warmup):
        model.predict(x, verbose=0)
    row = {"load_ms": load_s * 1e3, "first_ms": first_s * 1e3,
           "latency": _percentiles(_repeat(lambda: model.predict(x, verbose=0), min_time, min_runs)),
           "peak_rss_mb": _peak_rss_mb()}
    if data:
        from edge_infer.metrics import classification_summary
        from train.data import load_images, scan_class_folders

        ds = scan_class_folders(data)
        imgs, ok = load_images(ds.paths, size)
        probs = model.predict(to_model_input(imgs, spec), batch_size=32, verbose=0)
        s = classification_summary(ds.labels[ok], probs, [i for i, g in enumerate(ds.kl_grades or []) if g >= 2] or None)
        row["accuracy"] = {"n": s["n"], "accuracy": s["accuracy"], "quadratic_weighted_kappa": s["quadratic_weighted_kappa"],
                           "screening_auc": s.get("screening_auc"), "failed": len(ds.paths) - len(ok)}
        row["predictions"] = {str(ds.paths[i]): ds.classes[int(k)] for i, k in zip(ok, probs.argmax(1))}
    return row


def cold_start(model_dir: str, fmt: str, image: str, repeats: int = 5) -> dict:
    """Whole-process times, median of ``repeats``: ``edge-infer IMAGE`` against a process that only
    imports numpy, Pillow and the format's runtime (the floor for any Python front end)."""
    from edge_infer.formats import FORMATS, Engine

    engine = "onnxruntime" if FORMATS[fmt].engine is Engine.ONNXRUNTIME else "edge_infer.runtimes as r; r._litert_interpreter_class()"
    imports = [sys.executable, "-c", f"import numpy, PIL.Image; import {engine}"]
    run = [sys.executable, "-c", "import sys; from edge_infer.cli import main; sys.exit(main())",
           "--model", model_dir, "--format", fmt, image]

    def median_wall(cmd) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    imports_s, run_s = median_wall(imports), median_wall(run)
    return {"format": fmt, "imports_s": imports_s, "edge_infer_s": run_s, "ratio": run_s / imports_s}


def sample_images(data: str | None, n: int, workdir: Path, size: int = 224) -> list[str]:
    """Up to ``n`` images from ``data`` (every class in turn), or ``n`` grey noise PNGs written to
    ``workdir`` (latency does not depend on content)."""
    if data:
        from train.data import balanced_order, scan_class_folders

        ds = scan_class_folders(data)
        return [str(ds.paths[i]) for i in balanced_order(ds.labels, n)]
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = workdir / f"noise_{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size), np.uint8)).save(path)
        paths.append(str(path))
    return paths


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


def run_bench(model_dir: str | Path, formats: list[str] | None = None, threads: list[int] | None = None,
              data: str | Path | None = None, keras_model: str | Path | None = None, min_time: float = 2.0,
              min_runs: int = 20, warmup: int = 10, images: int = 32, cold_start_repeats: int = 5,
              progress=lambda message: None, timeout: float = 1800) -> dict:
    """Measure every (format, threads) row in its own process and return the whole report."""
    from edge_infer.manifest import load_manifest

    m = load_manifest(model_dir)
    formats = formats or list(m.artifacts)
    threads = threads or sorted({1, os.cpu_count() or 1})
    report = {"cold_start_repeats": cold_start_repeats, "model": m.name, "model_dir": str(m.model_dir), "input_size": m.preprocess.size,
              "created": time.strftime("%Y-%m-%d %H:%M %Z"),
              "machine": machine_info(), "settings": {"min_time_s": min_time, "min_runs": min_runs, "warmup": warmup,
                                                      "threads": threads, "data": str(data) if data else None},
              "rows": [], "cold_start": []}
    with tempfile.TemporaryDirectory() as tmp:
        samples = sample_images(str(data) if data else None, images, Path(tmp))
        jobs = [("keras", None, t) for t in threads if keras_model] + [("format", f, t) for f in formats for t in threads]
        for i, (kind, fmt, t) in enumerate(jobs, 1):
            name = fmt or "keras"
            progress(f"[{i}/{len(jobs)}] {name}, {t} thread{'s' * (t > 1)}")
            first = t == threads[0]  # accuracy once per format
            common = {"threads": t, "images": samples, "min_time": min_time, "min_runs": min_runs, "warmup": warmup,
                      "data": str(data) if data and first else None}
            if kind == "keras":
                row = _worker_call("keras", common | {"keras_model": str(keras_model), "size": m.preprocess.size}, timeout)
                row |= {"format": "keras", "precision": "float32 (TensorFlow)", "bytes": Path(keras_model).stat().st_size}
            else:
                row = _worker_call("format", common | {"model_dir": str(m.model_dir), "fmt": fmt}, timeout)
                art = m.artifacts.get(fmt)
                row |= {"format": fmt, "precision": art.format.precision if art else None,
                        "bytes": (m.model_dir / art.file).stat().st_size if art else None}
            row["threads"] = t
            report["rows"].append(row)
        ok = {r["format"] for r in report["rows"] if "error" not in r}
        present = [f for f in formats if f in m.artifacts and f in ok]  # cold start only what loads
        engines = {}
        for fmt in present:  # one cold start per engine
            engines.setdefault(m.artifacts[fmt].format.engine, fmt)
        for fmt in engines.values():
            progress(f"cold start: edge-infer --format {fmt}")
            try:
                report["cold_start"].append(cold_start(str(m.model_dir), fmt, samples[0], cold_start_repeats))
            except (subprocess.SubprocessError, OSError) as e:
                report["cold_start"].append({"format": fmt, "error": str(e)})
    _agreement(report)
    _floor(report, m)
    return report


def _agreement(report: dict) -> None:
    """Top-1 agreement of each row's predictions with the float32 reference (Keras, else an fp32 format)."""
    preds = {id(r): r.pop("predictions") for r in report["rows"] if "predictions" in r}
    rows = [r for r in report["rows"] if id(r) in preds]
    ref = next((r for r in rows if r["format"] == "keras"), None) or next((r for r in rows if "fp32" in r["format"]), None)
    if ref is None:
        return
    theirs = preds[id(ref)]
    for r in rows:
        if r is ref:
            continue
        common = preds[id(r)].keys() & theirs.keys()
        r["agreement_with"] = ref["format"]
        r["agreement"] = float(np.mean([preds[id(r)][k] == theirs[k] for k in common])) if common else None


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


def table(report: dict) -> str:
    """The report as a readable text table, machine first."""
    mi = report["machine"]
    lines = [f"machine: {mi['cpu']}, {mi['logical_cores']} logical cores, SIMD {' '.join(mi['simd']) or 'n/a'}; "
             f"{mi['os']}, Python {mi['python']}; " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()),
             f"model: {report['model']} ({report['input_size']} px, {_f(report['gflop_per_image'], 1, 2)} GFLOP per image); "
             f"nominal float32 peak {_f(report['nominal_fp32_gflops_per_thread'], 1, 0)} GFLOP/s per thread", ""]
    head = ["format", "thr", "MB", "load ms", "1st ms", "median", "p90", "p99", "GFLOP/s", "e2e ms", "/raw", "+CAM ms", "/raw",
            "+PNG ms", "/raw", "RSS MB", "acc", "QWK", "agree"]
    rows = []
    for r in report["rows"]:
        if "error" in r:
            rows.append([r["format"], str(r["threads"]), _f(r.get("bytes"), 1e-6, 1), "error: " + r["error"]])
            continue
        c = _cells(r)
        rows.append([r["format"], str(r["threads"]), *(c[k] for k in ("mb", "load", "first", "median", "p90", "p99", "gflops", "e2e", "ratio",
                                                                       "e2e_cam", "ratio_cam", "e2e_png", "ratio_png", "rss", "acc", "qwk", "agree"))])
    measured = [row for row in rows if len(row) == len(head)]
    widths = [max([len(h)] + [len(row[i]) for row in measured]) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for row in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)) if len(row) == len(head) else "  ".join(row))
    for c in report["cold_start"]:
        if "error" in c:
            lines.append(f"cold start {c['format']}: error {c['error']}")
        else:
            lines.append(f"cold start, whole process (median): edge-infer --format {c['format']} one image {c['edge_infer_s']:.2f} s; "
                         f"importing numpy+Pillow+runtime alone {c['imports_s']:.2f} s; ratio {c['ratio']:.2f}")
    return "\n".join(lines)


def markdown(report: dict, command: str) -> str:
    """``benchmarks/RESULTS.md``: the machine, the command, one table, and the ratios that matter."""
    mi = report["machine"]
    lines = [f"# Benchmark results: {report['model']}", "",
             f"Measured {report.get('created', '')} by:", "", "```bash", command, "```", "",
             f"- Machine: {mi['cpu']}, {mi['logical_cores']} logical cores, SIMD: {', '.join(mi['simd']) or 'n/a'}; "
             f"{mi['os']}; Python {mi['python']}.",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()) + ".",
             f"- Model: {report['input_size']} px input, {_f(report['gflop_per_image'], 1, 2)} GFLOP per image "
             "(2 × multiply-adds of its convolutions and dense layers, from the manifest). Nominal float32 peak of "
             f"this CPU: {_f(report['nominal_fp32_gflops_per_thread'], 1, 0)} GFLOP/s per thread (clock × FLOP per cycle of its widest FMA).",
             f"- Latency: the raw runtime call on one preprocessed image, batch 1, after {report['settings']['warmup']} "
             f"warm-up calls, for at least {report['settings']['min_time_s']} s of such calls and {report['settings']['min_runs']} calls.",
             "- End to end (e2e): time per knee of a batch of image files run as `edge-infer` runs it: the next files "
             "decoded and preprocessed in a background thread while the network runs, then the result record. +CAM: the "
             "same batch through `Classifier.predict_many(heatmap=True)`, which also computes each Grad-CAM map; +PNG: "
             "`edge-infer --heatmap-dir`, which also writes each overlay as a PNG. Raw invoke and batches alternate "
             "in rounds of one batch each; \"/ raw\" is the median over rounds of that round's ratio to the raw invoke.",
             "- Load: checksum and session or interpreter creation. Each row runs in a fresh process; RSS is that process's peak.", "",
             "| format | threads | MB | load ms | first ms | median ms | p90 ms | p99 ms | GFLOP/s | e2e ms | e2e / raw | "
             "e2e+CAM ms | +CAM / raw | e2e+PNG ms | +PNG / raw | peak RSS MB | accuracy | QWK | AUC | agreement |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| `{r['format']}` | {r['threads']} | {_f(r.get('bytes'), 1e-6, 1)} | error: {r['error']} |" + " |" * 16)
            continue
        c = _cells(r)
        agree = f"{c['agree']} vs {r['agreement_with']}" if r.get("agreement_with") else "–"
        lines.append(f"| `{r['format']}` | {r['threads']} | " + " | ".join(c[k] for k in (
            "mb", "load", "first", "median", "p90", "p99", "gflops", "e2e", "ratio", "e2e_cam", "ratio_cam", "e2e_png", "ratio_png",
            "rss", "acc", "qwk", "auc")) + f" | {agree} |")
    lines += ["", f"Whole-process cold start, one image (median of {report.get('cold_start_repeats', 5)} runs):", ""]
    for c in report["cold_start"]:
        if "error" in c:
            lines.append(f"- `{c['format']}`: error {c['error']}")
        else:
            lines.append(f"- `edge-infer --format {c['format']} knee.png`: {c['edge_infer_s']:.2f} s; a Python process that only "
                         f"imports numpy, Pillow and the runtime: {c['imports_s']:.2f} s; ratio {c['ratio']:.2f}.")
    lines.append("")
    return "\n".join(lines)


def _cells(r: dict) -> dict[str, str]:
    """A measured row's figures, formatted once for both the text table and the Markdown."""
    acc = r.get("accuracy") or {}
    e2e, cam, png = (r.get(k) or {} for k in ("end_to_end", "end_to_end_gradcam", "end_to_end_heatmap_png"))
    return {
        "mb": _f(r.get("bytes"), 1e-6, 1), "load": _f(r["load_ms"]), "first": _f(r["first_ms"], 1, 1),
        **{k: _f(r["latency"][f"{k}_ms"], 1, 2) for k in ("median", "p90", "p99")},
        "gflops": _f(r.get("gflop_per_s"), 1, 1), "e2e": _f(e2e.get("median_ms"), 1, 2),
        "e2e_cam": _f(cam.get("median_ms"), 1, 2), "e2e_png": _f(png.get("median_ms"), 1, 2),
        "ratio": _f(e2e.get("ratio_to_raw"), 1, 2), "ratio_cam": _f(cam.get("ratio_to_raw"), 1, 2),
        "ratio_png": _f(png.get("ratio_to_raw"), 1, 2), "rss": _f(r["peak_rss_mb"]),
        "acc": _f(acc.get("accuracy"), 1, 3), "qwk": _f(acc.get("quadratic_weighted_kappa"), 1, 3),
        "auc": _f(acc.get("screening_auc"), 1, 3), "agree": _f(r.get("agreement"), 1, 3),
    }


def _f(v, scale: float = 1.0, digits: int = 0) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def plot(report: dict, path: str | Path) -> Path:
    """Latency (median, most threads) against file size, each point labelled with accuracy."""
    from kneeoa.plots import scatter_png

    best: dict[str, dict] = {}
    for r in report["rows"]:
        if "error" not in r and (r["format"] not in best or r["threads"] > best[r["format"]]["threads"]):
            best[r["format"]] = r
    accuracy = {r["format"]: r["accuracy"]["accuracy"] for r in report["rows"] if r.get("accuracy")}
    points = []
    for name, r in best.items():
        acc = accuracy.get(name)
        points.append((r["bytes"] / 1e6, r["latency"]["median_ms"], name + (f" (acc {acc:.3f})" if acc is not None else "")))
    return scatter_png(points, path, f"{report['model']}: latency vs size", "file size (MB)",
                       f"median latency (ms), batch 1, {max(report['settings']['threads'])} threads")


def _worker_main(argv: list[str]) -> None:
    kind, args = argv[0], json.loads(argv[1])
    row = measure_keras(**args) if kind == "keras" else measure_format(**args)
    print(json.dumps(row))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
