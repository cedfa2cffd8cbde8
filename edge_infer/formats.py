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
        calibrated: Whether conversion needs representative real images (static quantization).
    """

    name: str
    engine: Engine
    suffix: str
    precision: str
    description: str
    calibrated: bool = False

    @property
    def filename(self) -> str:
        return f"model{self.suffix}"


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat("onnx-fp32", Engine.ONNXRUNTIME, ".fp32.onnx", "float32", "tf2onnx export"),
        ModelFormat(
            "onnx-int8",
            Engine.ONNXRUNTIME,
            ".int8.onnx",
            "int8 weights, uint8 activations",
            "onnxruntime static QDQ quantization, per-channel weights, calibrated on real images",
            calibrated=True,
        ),
        ModelFormat("tflite-fp32", Engine.LITERT, ".fp32.tflite", "float32", "TFLite converter"),
        ModelFormat("tflite-fp16", Engine.LITERT, ".fp16.tflite", "float16 weights", "TFLite float16 quantization"),
        ModelFormat(
            "tflite-dynamic",
            Engine.LITERT,
            ".dynamic.tflite",
            "int8 weights, float activations",
            "TFLite dynamic-range quantization",
        ),
        ModelFormat(
            "tflite-int8",
            Engine.LITERT,
            ".int8.tflite",
            "int8 weights and activations, float I/O",
            "TFLite full-integer quantization, calibrated on real images",
            calibrated=True,
        ),
    )
}

FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


def get_format(name: str) -> ModelFormat:
    """Look a format up by name.

    Raises:
        KeyError: with the list of known names, when ``name`` is not registered.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; known formats: {', '.join(FORMAT_NAMES)}") from None
