"""The screening kits' figures for the README: each platform's kit size, the offline install time
on this machine, and the emulated Raspberry Pi's install and screening times.

    python benchmarks/kit_figures.py [--out benchmarks/KIT_RESULTS.md] [--no-emulated]

Builds one kit per platform (linux-aarch64, linux-x86_64, win-amd64; Python 3.11; the shipped
model's formats; with the tflite and dicom extras) as a zip from the package index (downloads are
cached in ~/.cache/kneeoa-kit), installs this machine's kit inside ``unshare -n``, and installs the
aarch64 kit in an emulated Pi (qemu-user-static + proot). Emulated timings say nothing about a
real Pi. Takes 10-20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kneeoa_kit import emulate
from kneeoa_kit.build import KitOptions, build_kit
from kneeoa_kit.targets import parse_targets
from kneeoa_kit.verify import extract, this_platform
from kneeoa_kit.wheelhouse import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "default"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def build(platform_name: str, folder: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    archive = folder / f"kneeoa-kit-{platform_name}.zip"
    build_kit(
        KitOptions(MODEL, parse_targets(platform_name, "3.11"), archive, command=f"(kit_figures) {platform_name}")
    )
    return archive, time.perf_counter() - start


def host_install(archive: Path, folder: Path) -> float:
    kit = extract(archive, folder / "host")
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), "KNEEOA_HOME": str(folder / "host-home"),
           "PYTHON": getattr(sys, "_base_executable", sys.executable)}  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(["unshare", "-n", "sh", str(kit / "install.sh")], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"host install failed: {proc.stderr[-2000:]}")
    return seconds


def emulated(archive: Path, folder: Path) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    root = emulate.pi_root(default_cache_dir())
    times["root (reused when cached)"] = time.perf_counter() - start
    kit, home = extract(archive, folder / "pi"), folder / "pi-home"
    home.mkdir()
    binds = {p: p for p in (kit, home, REPO / "examples")}
    start = time.perf_counter()
    proc = emulate.run_on_pi(root, ["sh", f"{kit}/install.sh"], binds, {"KNEEOA_HOME": str(home)})
    times["offline install"] = time.perf_counter() - start
    if f"installed: {home}/venv" not in proc.stdout:
        raise SystemExit(f"emulated install failed: {proc.stderr[-2000:]}")
    for fmt in ("onnx-int8", "tflite-dynamic"):
        start = time.perf_counter()
        run = emulate.run_on_pi(root, [f"{home}/venv/bin/edge-infer", "--model", f"{kit}/model", "--format", fmt,
                                       "--json", str(REPO / "examples")], binds)  # fmt: skip
        times[f"edge-infer, 3 knees, {fmt}"] = time.perf_counter() - start
        if run.stdout.count('"kl_grade"') != 3:
            raise SystemExit(f"emulated edge-infer failed: {run.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "KIT_RESULTS.md")
    parser.add_argument("--no-emulated", action="store_true")
    args = parser.parse_args()
    lines = [
        "# Screening kit figures",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {cpu_name()} ({os.cpu_count()} cores), by:",
        "",
        "```bash",
        shlex.join(["python", "benchmarks/kit_figures.py", *sys.argv[1:]]),
        "```",
        "",
        "| kit (Python 3.11, onnx-int8 + tflite-dynamic, tflite and dicom extras) | zip MB | build s (downloads cached) |",
        "|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="kit-figures-") as tmp:
        folder = Path(tmp)
        archives = {}
        for name in ("linux-aarch64", "linux-x86_64", "win-amd64"):
            archives[name], seconds = build(name, folder)
            lines.append(f"| `{name}` | {archives[name].stat().st_size / 1e6:.1f} | {seconds:.0f} |")
        install = host_install(archives[this_platform()], folder)
        lines += [
            "",
            f"Offline install on this machine (`unshare -n sh install.sh`, {this_platform()}): {install:.0f} s.",
            "",
        ]
        if not args.no_emulated:
            lines += [
                "Emulated Raspberry Pi 4 (qemu `cortex-a72` under proot, `unshare -n`; says nothing about a real Pi's speed):",
                "",
            ]
            lines += ["| step | seconds |", "|---|---|"]
            lines += [f"| {k} | {v:.0f} |" for k, v in emulated(archives["linux-aarch64"], folder).items()]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
