"""TFLite export through a Keras ``ExportArchive`` with a named ``serve`` signature, so the device
finds ``probabilities`` and ``features`` by name (``get_output_details()`` order is not Keras order).

One conversion writes the SavedModel once (:func:`write_saved_model`) and converts every TFLite
variant from it (:func:`convert_saved_model`); :func:`export_tflite` does both for one file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edge_infer.formats import FORMATS, Engine
from edge_infer.quiet import native_output_to
from edge_infer.runtimes import TFLITE_SIGNATURE

from .source import FEATURES_OUTPUT, PROBS_OUTPUT, input_signature

TFLITE_MODES = tuple(f.variant for f in FORMATS.values() if f.engine is Engine.LITERT)


def export_tflite(
    export_model, size: int, path: Path, mode: str, calibration: np.ndarray | None = None, log_file: str = os.devnull
) -> Path:
    """Convert the two-output Keras model to TFLite (through a temporary SavedModel).

    Args:
        mode: ``fp32``; ``fp16`` (float16 weights); ``dynamic`` (int8 weights, float activations);
            ``int8`` (full integer with float input/output, calibrated on ``calibration``).
        calibration: Preprocessed real images, required for ``int8``.
    """
    _check_mode(mode, calibration)
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = write_saved_model(export_model, size, Path(tmp), log_file)
        return convert_saved_model(saved_model, path, mode, calibration, log_file)


def write_saved_model(export_model, size: int, directory: Path, log_file: str = os.devnull) -> Path:
    """Write the two-output Keras model as a SavedModel whose ``serve`` signature returns
    ``probabilities`` and ``features`` by name; returns ``directory``."""
    import keras

    with native_output_to(log_file, stdout=True, stderr=True):
        archive = keras.export.ExportArchive()
        archive.track(export_model)
        archive.add_endpoint(
            name=TFLITE_SIGNATURE,
            fn=lambda x: dict(zip((PROBS_OUTPUT, FEATURES_OUTPUT), export_model(x, training=False), strict=True)),
            input_signature=input_signature(size),
        )
        archive.write_out(str(directory), verbose=False)
    return directory


def convert_saved_model(
    saved_model: Path, path: Path, mode: str, calibration: np.ndarray | None = None, log_file: str = os.devnull
) -> Path:
    """Convert a SavedModel from :func:`write_saved_model` to TFLite (``mode`` as in :func:`export_tflite`)."""
    import tensorflow as tf

    _check_mode(mode, calibration)
    with native_output_to(log_file, stdout=True, stderr=True):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[TFLITE_SIGNATURE])
        if mode != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        path.write_bytes(converter.convert())
    return path


def _check_mode(mode: str, calibration: np.ndarray | None) -> None:
    if mode not in TFLITE_MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; choose from {TFLITE_MODES}")
    if mode == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("full-integer TFLite needs calibration images (--calibration DIR)")
