"""A long batch through the real ``edge-infer`` process, its memory sampled as it runs.

``python -m kneeoa_bench.soak --n 10000 [--heatmaps] [--json FILE]`` links the example knees
(``examples/``, or ``--knees DIR``) under ``n`` distinct names in a scratch folder, runs
``edge-infer --output results.jsonl`` over them (and ``--heatmap-dir`` with ``--heatmaps``), and
reads the process's resident memory (``VmRSS``, Linux ``/proc``) every 0.2 s. It reports the peak
in each tenth of the batch: a batch engine that holds results or images would grow with ``n``;
this one should stay flat. It also checks that every input has exactly one record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE_SECONDS = 0.2


def soak(n: int, knees: list[Path], heatmaps: bool, fmt: str | None = None) -> dict:
    """Run the batch and return its memory profile (MiB) and counts."""
    with tempfile.TemporaryDirectory(prefix="kneeoa-soak-") as scratch:
        root = Path(scratch)
        inputs = root / "in"
        inputs.mkdir()
        for i in range(n):
            (inputs / f"knee{i:06d}{knees[i % len(knees)].suffix}").symlink_to(knees[i % len(knees)].resolve())
        results = root / "results.jsonl"
        argv = [sys.executable, "-m", "edge_infer", "--no-progress", "--output", str(results), str(inputs)]
        argv += ["--heatmap-dir", str(root / "maps")] if heatmaps else []
        argv += ["--format", fmt] if fmt else []
        start = time.perf_counter()
        samples = _sample(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), results)
        seconds = time.perf_counter() - start
        records = [json.loads(line) for line in results.read_text().splitlines()]
        maps = len(list((root / "maps").iterdir())) if heatmaps else 0
    graded = sum(r.get("kl_grade") is not None for r in records)
    return {"n": n, "heatmaps": heatmaps, "format": fmt or "default", "seconds": round(seconds, 1),
            "records": len(records), "graded": graded, "heatmap_files": maps,
            "peak_rss_mib_by_tenth": _peaks_by_tenth(samples, n)}  # fmt: skip


def _sample(proc: subprocess.Popen, results: Path) -> list[tuple[int, float]]:
    """(records written so far, RSS in MiB) every :data:`SAMPLE_SECONDS` until ``proc`` ends."""
    samples = []
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            rss = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS"))
            done = results.read_bytes().count(b"\n") if results.exists() else 0
        except (OSError, StopIteration):
            break
        samples.append((done, rss / 1024))
        time.sleep(SAMPLE_SECONDS)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"edge-infer exited {proc.returncode}: {err.decode()[-500:]}")
    return samples


def _peaks_by_tenth(samples: list[tuple[int, float]], n: int) -> list[float]:
    peaks = [0.0] * 10
    for done, rss in samples:
        tenth = min(9, done * 10 // max(n, 1))
        peaks[tenth] = max(peaks[tenth], rss)
    return [round(p, 1) for p in peaks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="Inputs in the batch [10000].")
    parser.add_argument("--heatmaps", action="store_true", help="Also write a heatmap PNG per knee.")
    parser.add_argument("--format", help="Model format [the manifest's default].")
    parser.add_argument("--knees", type=Path, default=Path(__file__).resolve().parent.parent / "examples")
    parser.add_argument("--json", type=Path, help="Also write the result here.")
    args = parser.parse_args(argv)
    knees = sorted(p for p in args.knees.iterdir() if p.suffix.lower() == ".png")
    result = soak(args.n, knees, args.heatmaps, args.format)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["records"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
