"""The streaming input pipeline, measured: does reading shards slow training, and does memory stay
flat as the dataset grows?

``steps``: the same model (InceptionV3 to ``mixed5``, the trainer's), batch and augmentation, fed
(a) from in-memory tensors (:func:`kneeoa_train.stream.memory_dataset`, as ``kneeoa train`` on class
folders) and (b) streamed from shards (:func:`kneeoa_train.stream.shard_dataset`); median seconds
per training step after warm-up, alternating blocks so a busy machine hurts both alike.

``memory``: in a fresh process per size, ``kneeoa prepare`` over N synthetic knees, then one full
streaming pass of the training pipeline (decode, shuffle buffer, augmentation, batching); the
process's peak RSS after each.

    python benchmarks/input_pipeline.py steps --size 128 --markdown benchmarks/INPUT_PIPELINE.md
    python benchmarks/input_pipeline.py memory --counts 10000,100000 --markdown benchmarks/INPUT_PIPELINE.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_knees(root: Path, n: int, size: int = 96, distinct: int = 250) -> None:
    """``n`` kneeKL224-named PNGs (two knees per patient) in class folders; ``distinct`` images are
    drawn and their bytes reused, so writing 100,000 takes seconds (prepare still decodes each)."""
    from io import BytesIO

    from PIL import Image

    from synthetic import synthetic_knee

    blobs = []
    for i in range(distinct):
        buf = BytesIO()
        Image.fromarray(synthetic_knee(i % 5, size, seed=i)).save(buf, format="PNG")
        blobs.append((i % 5, buf.getvalue()))
    for g in range(5):
        (root / str(g)).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        grade, blob = blobs[k % distinct]
        (root / str(grade) / f"{9000000 + k // 2}{'LR'[k % 2]}.png").write_bytes(blob)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_one(n: int, size: int) -> dict:
    """Run in a fresh process: prepare ``n`` knees, then stream one full pass; peak RSS after each."""
    import numpy as np

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.prepare import PrepareOptions, prepare
    from kneeoa_train.shardset import read_shard_set
    from kneeoa_train.stream import shard_dataset

    class Quiet:
        def start(self, total):
            pass

        def advance(self, k):
            pass

        def note(self, line):
            print(line, file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="kneeoa-pipeline-"))
    try:
        write_knees(work / "data", n)
        base = _rss_mib()
        t0 = time.perf_counter()
        manifest = prepare(work / "data", work / "shards", PrepareOptions(size=size), Quiet())
        prep_s, prep_rss = time.perf_counter() - t0, _rss_mib()
        shards = read_shard_set(work / "shards")
        cfg = TrainConfig("a", "b", "c", input_size=size, batch_size=32)
        ds = shard_dataset(
            shards.files("train"), shards.spec, np.eye(5, dtype=np.float32), np.ones(5), cfg, training=True
        )
        steps = -(-manifest["splits"]["train"]["images"] // cfg.batch_size)
        t0 = time.perf_counter()
        for _ in ds.take(steps):
            pass
        return {
            "images": n,
            "written": manifest["written"],
            "shard_mib": round(sum(s["bytes"] for sp in manifest["splits"].values() for s in sp["shards"]) / 2**20, 1),
            "rss_before_mib": round(base),
            "rss_after_prepare_mib": round(prep_rss),
            "prepare_s": round(prep_s, 1),
            "rss_after_epoch_mib": round(_rss_mib()),
            "epoch_steps": steps,
            "epoch_s": round(time.perf_counter() - t0, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def steps_compare(n: int, size: int, steps: int, rounds: int) -> dict:
    """Median step time of the same training, fed from memory and from shards."""
    import keras
    import numpy as np

    from edge_infer.folders import load_images, scan_class_folders
    from edge_infer.preprocess import PreprocessSpec, to_model_input
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.model import build_model
    from kneeoa_train.prepare import PrepareOptions, prepare
    from kneeoa_train.shardset import read_shard_set
    from kneeoa_train.stream import memory_dataset, shard_dataset

    class Quiet:
        start = advance = note = staticmethod(lambda *a: None)

    work = Path(tempfile.mkdtemp(prefix="kneeoa-steps-"))
    try:
        write_knees(work / "data", n, size=size + size // 3)
        prepare(work / "data", work / "shards", PrepareOptions(size=size, fractions=(0.9, 0.1, 0.0)), Quiet())
        shards = read_shard_set(work / "shards")
        spec = PreprocessSpec(size=size, intensity="percentile")
        folder = scan_class_folders(work / "data")
        images, ok = load_images(folder.paths, spec)
        x, y = to_model_input(images, spec, channels=1), folder.labels[ok]
        cfg = TrainConfig("a", "b", "c", input_size=size, batch_size=32)
        targets, w = np.eye(5, dtype=np.float32), np.ones(5)
        feeds = {
            "memory": memory_dataset(x, y, w[y], targets, cfg, training=True).repeat(),
            "shards": shard_dataset(shards.files("train"), shards.spec, targets, w, cfg, training=True),
        }
        keras.utils.set_random_seed(0)
        model = build_model(5, size)
        model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
        iters = {k: iter(v) for k, v in feeds.items()}
        times: dict[str, list[float]] = {k: [] for k in feeds}
        for r in range(rounds + 1):
            for name, it in iters.items():
                for _ in range(steps):
                    t0 = time.perf_counter()
                    xb, yb, wb = next(it)
                    model.train_on_batch(xb, yb, sample_weight=wb)
                    if r:  # round 0 warms up both
                        times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        return {
            "images": n,
            "size": size,
            "batch": cfg.batch_size,
            "steps_each": steps * rounds,
            "memory_s_per_step": round(med["memory"], 4),
            "shards_s_per_step": round(med["shards"], 4),
            "ratio": round(med["shards"] / med["memory"], 3),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("steps", "memory", "_memory_one"))
    p.add_argument("--counts", default="10000,100000")
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--size", type=int, default=75)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--markdown", type=Path)
    a = p.parse_args()
    if a.what == "_memory_one":
        print(json.dumps(memory_one(int(a.counts), a.size)))
        return
    if a.what == "steps":
        rows = [steps_compare(a.images, a.size, a.steps, a.rounds)]
    else:
        rows = []
        for n in map(int, a.counts.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "_memory_one", "--counts", str(n), "--size", str(a.size)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    text = json.dumps(rows, indent=2)
    print(text)
    if a.markdown:
        cmd = "python benchmarks/input_pipeline.py " + " ".join(sys.argv[1:])
        with open(a.markdown, "a") as f:
            f.write(
                f"\n## `{cmd}`\n\n{time.strftime('%Y-%m-%d')}, {_machine()}, load average {os.getloadavg()[0]:.1f} at the end.\n\n```json\n{text}\n```\n"
            )


if __name__ == "__main__":
    main()
