"""The parity floors of `kneeoa convert`, as a pure function (no conversion needed)."""

from __future__ import annotations

import pytest


def test_floors_reject_by_agreement_and_gradcam_and_say_why():
    from kneeoa_convert.errors import ParityFloorError
    from kneeoa_convert.pipeline import ConvertOptions, apply_floors

    def art(agreement, r):
        return {"parity_vs_keras": {"top1_agreement": agreement, "gradcam_r_mean": r, "n": 200}}

    artifacts = {"onnx-fp32": art(1.0, 1.0), "onnx-int8": art(0.95, 0.99), "tflite-int8": art(0.99, 0.8)}
    rejected = apply_floors(artifacts, ConvertOptions(formats=tuple(artifacts)))
    assert set(rejected) == {"onnx-int8", "tflite-int8"}
    assert rejected["onnx-int8"] == "top-1 agreement with Keras 0.950 < 0.97 on 200 images"
    assert rejected["tflite-int8"] == "Grad-CAM r 0.800 < 0.9 on 200 images"
    with pytest.raises(ParityFloorError, match="--default-format onnx-int8 was rejected: top-1 agreement"):
        apply_floors(artifacts, ConvertOptions(formats=tuple(artifacts), default_format="onnx-int8"))
