"""Training precision: bfloat16 mixed precision where the CPU has AMX, float32 elsewhere.

Measured with TensorFlow 2.21 on an Intel Xeon with ``amx_bf16`` (InceptionV3 to ``mixed5``,
batch 32, CPU seconds per step, float32 → bfloat16): 128 px 1.41 → 1.01, 224 px 6.76 → 3.36.
Without AMX, bfloat16 convolutions fall back to slower paths, so ``auto`` keeps float32 there.
``python -m kneeoa_train.precision`` re-measures on the machine in hand.
"""

from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags (empty when ``/proc/cpuinfo`` cannot be read, e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def resolve_precision(precision: str, flags: set[str] | None = None) -> str:
    """``auto`` → ``bfloat16`` when the CPU has AMX bf16 tiles, else ``float32``."""
    if precision != "auto":
        return precision
    flags = cpu_flags() if flags is None else flags
    return "bfloat16" if {"amx_bf16", "amx_tile"} <= flags else "float32"


def keras_policy(precision: str) -> str:
    """The Keras dtype policy for a resolved precision."""
    return {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]


def _measure(size: int = 128, steps: int = 6, batch: int = 32) -> None:  # pragma: no cover - a measurement
    import time

    import keras
    import numpy as np

    from .model import build_model

    for precision in ("float32", "bfloat16"):
        keras.mixed_precision.set_global_policy(keras_policy(precision))
        model = build_model(5, size)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype(np.float32)
        y = np.eye(5, dtype=np.float32)[np.arange(batch) % 5]
        model.train_on_batch(x, y)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            model.train_on_batch(x, y)
        wall, cpu = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
        print(f"{precision}: {size} px, batch {batch}: {wall:.2f} s wall, {cpu:.2f} CPU s per step")
    keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":  # pragma: no cover
    import sys

    print("auto resolves to", resolve_precision("auto"))
    _measure(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
