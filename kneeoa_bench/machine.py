"""What machine a benchmark ran on, and how much memory a process used."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


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
    interesting = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_int8",
        "asimd",
        "asimddp",
        "i8mm",
        "sve",
    ]
    versions = {}
    for dist in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "numpy", "pillow", "tensorflow", "tensorflow-cpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
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


def peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20
