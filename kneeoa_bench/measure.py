"""One benchmark row, measured in the process that runs it: ``python -m kneeoa_bench.measure KIND ARGS``.

:mod:`kneeoa_bench.bench` starts one fresh process per row, so load time is a cold load, peak RSS is
that row's alone, and a format that fails to load becomes a row with its error. Timings use
``time.perf_counter``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import peak_rss_mb


def _percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "runs": len(ms),
    }


def _repeat(fn, min_time: float, min_runs: int) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def measure_format(
    model_dir: str,
    fmt: str,
    threads: int,
    images: list[str],
    min_time: float,
    min_runs: int,
    warmup: int,
    data: str | None,
) -> dict:
    """One row, in this process: load, first inference, latency, end to end, peak RSS, accuracy."""
    from edge_infer.classifier import Classifier
    from edge_infer.formats import FORMATS
    from edge_infer.runtimes import import_engine

    import_engine(FORMATS[fmt].engine)  # load time is the model's (checksum, session, warm-up), not the import's
    t = time.perf_counter()
    with Classifier(model_dir, format=fmt, threads=threads, gate="report") as clf:
        load_s = time.perf_counter() - t
        x = clf.prepare(images[0]).x  # the device's own preprocessing
        t = time.perf_counter()
        clf.runtime.run(x)
        first_s = time.perf_counter() - t
        for _ in range(warmup):
            clf.runtime.run(x)
        row = {"load_ms": load_s * 1e3, "first_ms": first_s * 1e3}
        row.update(_interleaved_rounds(clf, x, images, min_time, min_runs))
        row["peak_rss_mb"] = peak_rss_mb()  # before the accuracy pass, which holds a whole data set
    if data:
        from .evaluate import evaluate

        result = evaluate(data, model_dir, fmt, threads)
        s = result["summary"]
        row["accuracy"] = {k: s.get(k) for k in ("n", "accuracy", "quadratic_weighted_kappa")} | {
            "screening_auc": (s.get("screening") or {}).get("auc"),
            "failed": len(result["failed"]),
        }
        row["predictions"] = {r["input"]: r["predicted"] for r in result["predictions"]}
    return row


def _interleaved_rounds(clf, x, images: list[str], min_time: float, min_runs: int, min_rounds: int = 5) -> dict:
    """Raw invoke and the batch modes, measured in alternating rounds.

    A round is: ``len(images)`` raw invokes of one preprocessed image; the same images as one
    ``edge-infer`` batch (:func:`edge_infer.batch.run_batch`: decode ahead, infer, records); the batch
    through ``Classifier.predict_many(heatmap=True)``, which also computes each Grad-CAM map; and
    the ``edge-infer --heatmap-dir`` batch, which also writes the overlay PNGs; and the first batch
    again with the input gate off, so ``gate_cost`` is the gate's share of a knee's time. The
    classifier runs with the gate in ``report`` mode, so images it would refuse (noise, when no
    ``--data`` is given) still take the whole path. Rounds go on until
    the raw invokes alone add up to ``min_time``. Each ratio to raw is the median over rounds of
    that round's ratio, so the slow drifts of a shared machine, which move both sides of a round
    together, cancel out.
    """
    from edge_infer.batch import HeatmapWriter, run_batch

    def batch(mode: str, folder: str) -> float:
        writer = HeatmapWriter(Path(folder)) if mode == "png" else None
        clf.gate_mode = "off" if mode == "nogate" else "report"  # report: every image runs the whole path
        t = time.perf_counter()
        for result in run_batch(clf, [Path(p) for p in images], heatmap=mode == "cam", heatmaps=writer):
            if mode != "cam":
                result.to_record()  # what edge-infer prints
            if not result.ok:
                raise RuntimeError(result.error)
        elapsed = (time.perf_counter() - t) / len(images)
        clf.gate_mode = "report"
        return elapsed

    modes = {
        "end_to_end": "plain",
        "end_to_end_gradcam": "cam",
        "end_to_end_heatmap_png": "png",
        "end_to_end_no_gate": "nogate",
    }
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
    # the input gate's share of a knee's batch time: with it against without it, round by round
    out["gate_cost"] = float(
        np.median(np.asarray(per_round["end_to_end"]) / np.asarray(per_round["end_to_end_no_gate"]) - 1)
    )
    for key in modes:
        knee = np.asarray(per_round[key])
        out[key] = {
            "median_ms": float(np.median(knee) * 1e3),
            "images_per_s": float(1 / np.median(knee)),
            "ratio_to_raw": float(np.median(knee / base)),
        }
    return out


def measure_keras(
    keras_model: str,
    model_dir: str,
    threads: int,
    images: list[str],
    min_time: float,
    min_runs: int,
    warmup: int,
    data: str | None,
) -> dict:
    """The float32 Keras model in TensorFlow (``model.predict``), the reference the formats come
    from, fed by the model directory's own preprocessing and scored by its screening rule."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t = time.perf_counter()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.saving.load_model(keras_model, compile=False)
    load_s = time.perf_counter() - t
    from edge_infer.manifest import load_manifest
    from edge_infer.preprocess import prepare_file, to_model_input

    manifest = load_manifest(model_dir)
    spec = manifest.preprocess
    x = to_model_input(prepare_file(images[0], spec)[0], spec)
    t = time.perf_counter()
    model.predict(x, verbose=0)
    first_s = time.perf_counter() - t
    for _ in range(warmup):
        model.predict(x, verbose=0)
    row = {
        "load_ms": load_s * 1e3,
        "first_ms": first_s * 1e3,
        "latency": _percentiles(_repeat(lambda: model.predict(x, verbose=0), min_time, min_runs)),
        "peak_rss_mb": peak_rss_mb(),
    }
    if data:
        from edge_infer.folders import load_images, scan_class_folders
        from edge_infer.metrics import classification_summary

        ds = scan_class_folders(data)
        imgs, ok = load_images(ds.paths, spec)
        probs = model.predict(to_model_input(imgs, spec), batch_size=32, verbose=0)
        s = classification_summary(ds.labels[ok], probs, manifest.screening)
        row["accuracy"] = {
            "n": s["n"],
            "accuracy": s["accuracy"],
            "quadratic_weighted_kappa": s["quadratic_weighted_kappa"],
            "screening_auc": s.get("screening_auc"),
            "failed": len(ds.paths) - len(ok),
        }
        row["predictions"] = {str(ds.paths[i]): ds.classes[int(k)] for i, k in zip(ok, probs.argmax(1), strict=True)}
    return row


def cold_start(model_dir: str, fmt: str, image: str, repeats: int = 5) -> dict:
    """Whole-process times, median of ``repeats``: ``edge-infer --no-gate IMAGE`` against a process
    that only imports numpy, Pillow and the format's runtime (the floor for any Python front end)."""
    from edge_infer.formats import FORMATS

    engine = FORMATS[fmt].engine
    imports = [
        sys.executable,
        "-c",
        "import numpy, PIL.Image; from edge_infer.formats import Engine; "
        f"from edge_infer.runtimes import import_engine; import_engine(Engine({engine.value!r}))",
    ]
    run = [
        sys.executable,
        "-c",
        "import sys; from edge_infer.cli import main; sys.exit(main())",
        "--model",
        model_dir,
        "--format",
        fmt,
        "--no-gate",  # the gate still runs its checks; a noise image (no --data) is graded, not refused
        image,
    ]

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
        from edge_infer.folders import balanced_order, scan_class_folders

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


def main(argv: list[str]) -> None:
    kind, args = argv[0], json.loads(argv[1])
    row = measure_keras(**args) if kind == "keras" else measure_format(**args)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
