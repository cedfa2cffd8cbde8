"""Runtime-only knee-OA screening: onnxruntime or LiteRT, numpy, Pillow. Never imports TensorFlow.

>>> from edge_infer import Classifier
>>> result = Classifier().predict("knee.png")
>>> result.kl_grade, result.label, result.oa_probability

Names are imported on first use, so ``import edge_infer.cli`` (or ``edge_infer.errors``) does not
load numpy, Pillow or a runtime before they are needed.
"""

from __future__ import annotations

import importlib
import os
import sys

# A hospital device makes no network call: onnxruntime's PyPI build otherwise sends usage events
# and writes a device ID (../shared/TOOLCHAIN.md). The variable must be set before onnxruntime is
# imported (its import reads it; setting it later, or disable_telemetry_events(), does not stop
# it), and every entry point imports this package first. Forced, not defaulted. A program that
# imported onnxruntime with telemetry on before this package is refused an onnxruntime session
# (edge_infer.runtimes.OnnxRuntime), rather than run it.
ONNXRUNTIME_TELEMETRY_ON = "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1"
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

_EXPORTS = {
    "Classifier": "classifier",
    "Prediction": "classifier",
    "default_model_dir": "classifier",
    "BatchResult": "batch",
    "Screening": "screening",
    "KneeOAError": "errors",
    "InputImageError": "errors",
    "ManifestError": "errors",
    "ModelContractError": "errors",
    "RuntimeUnavailableError": "errors",
    "DatasetError": "errors",
    "ConfigError": "errors",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
