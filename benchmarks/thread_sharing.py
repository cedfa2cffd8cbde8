"""Threads sharing one LiteRT model: one interpreter behind a lock, or one interpreter per thread?

Each setting runs in a fresh process (so peak RSS is its own): ``workers`` threads classify the
example knees (decode done once beforehand; preprocessing, invoke and Grad-CAM per knee, as
``Classifier.predict`` does) for ``--seconds``; knees per second and the process's peak RSS.

    python benchmarks/thread_sharing.py --format tflite-dynamic --workers 1,2,4 --markdown benchmarks/THREADS.md

``shared+lock`` is what ``edge_infer`` does: one interpreter with every core, a lock around each
invoke. ``per-thread`` gives each worker its own interpreter with every core; ``per-thread/1``
its own interpreter with one core each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ("shared+lock", "per-thread", "per-thread/1")


def _one(fmt: str, setting: str, workers: int, seconds: float) -> dict:
    from edge_infer import Classifier
    from edge_infer.decode import load_image
    from edge_infer.formats import FORMATS
    from edge_infer.gradcam import cam_to_image, gradcam_from_features
    from edge_infer.runtimes import open_runtime

    clf = Classifier(REPO / "models" / "default", format=fmt, gate="off")
    m = clf.manifest
    images = [load_image(p)[0] for p in sorted((REPO / "examples").glob("*.png"))]
    content = m.artifact_bytes(fmt)
    head = m.load_head()
    shapes = {"probabilities": (None, len(m.classes)), "features": (None, *m.feature_shape)}
    size, ch = m.preprocess.size, m.preprocess.channels
    cores = os.cpu_count() or 1

    def runtime_for_thread():
        if setting == "shared+lock":
            return clf.runtime
        threads = 1 if setting == "per-thread/1" else cores
        path = m.model_dir / m.artifacts[fmt].file
        return open_runtime(FORMATS[fmt], path, m.outputs, (None, size, size, ch), shapes, threads, content=content)

    done = [0] * workers
    stop = time.perf_counter() + seconds
    start = threading.Barrier(workers + 1)

    def work(w: int) -> None:
        rt = runtime_for_thread()
        start.wait()
        i = w
        while time.perf_counter() < stop:
            prepared = clf.prepare(images[i % len(images)])
            out = rt.run(prepared.x)
            top = int(out["probabilities"][0].argmax())
            cam_to_image(gradcam_from_features(out["features"][0], head, top), prepared.pad)
            done[w] += 1
            i += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    stop = t0 + seconds
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    return {
        "format": fmt,
        "setting": setting,
        "workers": workers,
        "knees_per_s": sum(done) / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--format", default="tflite-dynamic")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--one", nargs=2, metavar=("SETTING", "WORKERS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(_one(a.format, a.one[0], int(a.one[1]), a.seconds)))
        return
    runs: dict[tuple[int, str], list[dict]] = {}
    for _ in range(a.repeats):  # settings alternate, so a load that comes and goes hits them alike
        for workers in (int(w) for w in a.workers.split(",")):
            for setting in SETTINGS:
                cmd = [sys.executable, __file__, "--format", a.format, "--seconds", str(a.seconds), "--one", setting, str(workers)]  # fmt: skip
                env = os.environ | {
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
                }
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                runs.setdefault((workers, setting), []).append(row)
                print(row, file=sys.stderr)
    rows = []
    for (workers, setting), rs in runs.items():
        rates = sorted(r["knees_per_s"] for r in rs)
        rows.append({"workers": workers, "setting": setting, "knees_per_s": statistics.median(rates),
                     "range": (rates[0], rates[-1]), "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)})  # fmt: skip
    lines = [
        f"# Threads sharing one LiteRT model ({a.format}, models/default)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores, by:",
        "",
        "```bash",
        f"python benchmarks/thread_sharing.py --format {a.format} --workers {a.workers} --seconds {a.seconds:g} "
        f"--repeats {a.repeats}" + (f" --markdown {a.markdown}" if a.markdown else ""),
        "```",
        "",
        "Each run is a fresh process: `workers` threads classify the three example knees in turn "
        "(preprocessing, invoke, Grad-CAM) for the stated seconds; settings alternate, and each row is the "
        f"median (min–max) of {a.repeats} runs. Load average when it started: {os.getloadavg()[0]:.1f}.",
        "",
        "| workers | setting | knees/s | min–max | peak RSS MB |",
        "|---|---|---|---|---|",
        *[
            f"| {r['workers']} | {r['setting']} | {r['knees_per_s']:.1f} | {r['range'][0]:.1f}–{r['range'][1]:.1f} "
            f"| {r['peak_rss_mb']:.0f} |"
            for r in rows
        ],
        "",
    ]
    text = "\n".join(lines)
    if a.markdown:
        a.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
