"""TFLite export through a Keras ``ExportArchive`` with a named ``serve`` signature, so the device
finds ``probabilities`` and ``features`` by name (``get_output_details()`` order is not Keras order)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edge_infer.quiet import native_output_to
from edge_infer.runtimes import TFLITE_SIGNATURE

from .source import FEATURES_OUTPUT, PROBS_OUTPUT, input_signature

from edge_infer.formats import FORMATS, Engine

TFLITE_MODES = tuple(f.variant for f in FORMATS.values() if f.engine is Engine.LITERT)


def export_tflite(export_model, size: int, path: Path, mode: str, calibration: np.ndarray | None = None,
                  log_file: str = os.devnull) -> Path:
    """Convert the two-output Keras model to TFLite.

    Args:
        mode: ``fp32``; ``fp16`` (float16 weights); ``dynamic`` (int8 weights, float activations);
            ``int8`` (full integer with float input/output, calibrated on ``calibration``).
        calibration: Preprocessed real images, required for ``int8``.
    """
    import keras
    import tensorflow as tf

    if mode not in TFLITE_MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; choose from {TFLITE_MODES}")
    if mode == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("full-integer TFLite needs calibration images (--calibration DIR)")
    with tempfile.TemporaryDirectory() as tmp, native_output_to(log_file, stdout=True, stderr=True):
        archive = keras.export.ExportArchive()
        archive.track(export_model)
        archive.add_endpoint(
            name=TFLITE_SIGNATURE,
            fn=lambda x: dict(zip((PROBS_OUTPUT, FEATURES_OUTPUT), export_model(x, training=False))),
            input_signature=input_signature(size),
        )
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[TFLITE_SIGNATURE])
        if mode != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        path.write_bytes(converter.convert())
    return path
