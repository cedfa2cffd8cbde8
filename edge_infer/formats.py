"""The one registry of model formats.

``convert`` writes these, ``edge_infer`` loads them and ``benchmarks`` iterates them, always by
name and in registry order. A CLI choice list is built from :data:`FORMATS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Engine(str, Enum):
    """Inference engines an edge device may have installed."""

    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"


@dataclass(frozen=True)
class ModelFormat:
    """One deployable representation of a trained model.

    Attributes:
        name: Registry key, e.g. ``"onnx-int8"``.
        engine: Runtime that executes it.
        suffix: File name ending used by ``convert``.
        precision: Weight/activation precision, for people reading tables.
        description: One line on how it is produced.
        variant: Precision variant within the engine (``fp32``, ``fp16``, ``dynamic``, ``int8``);
            the exporter dispatches on ``(engine, variant)``.
        calibrated: Whether conversion needs representative real images (static quantization).
    """

    name: str
    engine: Engine
    suffix: str
    precision: str
    description: str
    variant: str
    calibrated: bool = False

    @property
    def filename(self) -> str:
        return f"model{self.suffix}"


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat("onnx-fp32", Engine.ONNXRUNTIME, ".fp32.onnx", "float32", "tf2onnx export", "fp32"),
        ModelFormat(
            "onnx-int8",
            Engine.ONNXRUNTIME,
            ".int8.onnx",
            "int8 weights (7-bit range), uint8 activations; first two convolutions and softmax in float32",
            "onnxruntime static QDQ quantization, per-channel weights, percentile-calibrated on real images",
            "int8",
            calibrated=True,
        ),
        ModelFormat("tflite-fp32", Engine.LITERT, ".fp32.tflite", "float32", "TFLite converter", "fp32"),
        ModelFormat(
            "tflite-fp16", Engine.LITERT, ".fp16.tflite", "float16 weights", "TFLite float16 quantization", "fp16"
        ),
        ModelFormat(
            "tflite-dynamic",
            Engine.LITERT,
            ".dynamic.tflite",
            "int8 weights, float activations",
            "TFLite dynamic-range quantization",
            "dynamic",
        ),
        ModelFormat(
            "tflite-int8",
            Engine.LITERT,
            ".int8.tflite",
            "int8 weights and activations, float I/O",
            "TFLite full-integer quantization, calibrated on real images",
            "int8",
            calibrated=True,
        ),
    )
}

FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


MAX_THREADS = 64
"""Most inference threads a classifier accepts (``--threads``): more than any edge device has
cores; an unbounded value (5000) once hung the process."""
