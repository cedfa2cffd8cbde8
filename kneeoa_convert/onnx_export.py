"""ONNX export (tf2onnx) and static int8 quantization (onnxruntime QDQ).

Why :func:`quantize_onnx_int8` uses this scheme (measured with onnxruntime 1.32 on a 2-core AMD EPYC with AVX2 but no AVX-512
or VNNI, InceptionV3 to ``mixed5`` at 75 px, 300 validation knees, agreement = top-1 with float32):

- uint8 activations + int8 weights, 8-bit: 2.1 ms (fp32: 3.4 ms) but only 0.71 agreement: without
  VNNI, x86 u8×s8 kernels use VPMADDUBSW, whose 16-bit intermediate sums saturate. int8
  activations (onnxruntime's default) fail the same way (onnxruntime documents this for x86
  without VNNI).
- the same with ``reduce_range`` (7-bit weights, no saturation): 2.3 ms, 0.967 agreement with
  MinMax calibration, 0.970 with 99.999th-percentile calibration (kept: outliers in ReLU
  activations no longer stretch the uint8 range).
- uint8 weights (u8×u8): 0.980 agreement but 3.1 ms, hardly faster than float32.
- ``quantize_dynamic`` turns convolutions into ConvInteger, ≈ 6× slower than float32 at 224 px
  (measured on an AVX-512 machine).

Softmax stays in float: a uint8 probability resolves only steps of 1/255.

The first two convolutions stay in float too. Measured on the 128 px model, the same CPU and
826 validation knees, against Keras; latency is the median at 1 / 2 threads:

- everything quantized: 0.967 agreement.
- first convolution in float: 0.970, 8–10 / 6–7 ms (float32: 14.4 / 8.1–9.2 ms).
- first two convolutions in float (kept): 0.973, 10.6 / 6.7 ms, accuracy 0.640 (Keras 0.639).
- the whole stem (five convolutions) in float: 0.981, but 14.5 / 8.3 ms, as slow as float32,
  because the stem holds most of the arithmetic at this size.
- u8×u8 (no ``reduce_range``): 0.971 (0.977 with the first convolution in float) at float32 speed.
- MinMax calibration: 0.946; percentile 99.99 instead of 99.999: 0.963.

The input convolution sees raw pixels and the one after it the stem's widest activations;
both lose the most to 8 bits.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edge_infer.quiet import native_output_to

from .source import input_signature

OPSET = 17


def export_onnx_fp32(export_model, size: int, path: Path, log_file: str = os.devnull) -> Path:
    """Write the two-output Keras model as float32 ONNX; output names are the Keras output layers'."""
    import tf2onnx

    with native_output_to(log_file, stdout=True, stderr=True):
        tf2onnx.convert.from_keras(
            export_model, input_signature=input_signature(size), opset=OPSET, output_path=str(path)
        )
    return path


CALIBRATION_CHUNK = 100
"""Most images whose intermediate outputs onnxruntime's histogram calibrator holds at once.

It keeps every activation of every image it is given before it histograms them: for InceptionV3
to ``mixed5`` at 192 px, 1,000 calibration images took ``kneeoa convert`` past 23 GB (killed).
Fed in chunks (``CalibStridedMinMax``, which despite its name strides any calibrator), the
histograms are merged across chunks and the memory is bounded by one chunk: the same convert then
peaked at 8.0 GB resident (``/usr/bin/time -v``), with the same 1,000 images.

A histogram's bins start at the first chunk's smallest magnitude, so a smaller value in a later
chunk is not counted: with ReLU activations that smallest value is 0, and the percentile range
that calibration reads is at the top of the histogram."""


class _Calibration:
    """onnxruntime ``CalibrationDataReader`` over preprocessed images, one image per batch, read
    a range at a time (``set_range``) when calibration is chunked.

    onnxruntime wants the reader's length to be a whole number of chunks, so ``len`` is the image
    count rounded up to one, and the last range is cut short at the last image: every image is
    read exactly once, however many there are."""

    def __init__(self, input_name: str, x: np.ndarray, chunk: int):
        self._input = input_name
        self._x = x
        self.chunk = max(1, min(chunk, len(x)))
        self.set_range(0, len(x))

    def __len__(self) -> int:
        return -(-len(self._x) // self.chunk) * self.chunk

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter(range(start_index, min(end_index, len(self._x))))

    def get_next(self):
        i = next(self._items, None)
        return None if i is None else {self._input: self._x[i : i + 1]}


FLOAT_STEM_CONVS = 2
"""Leading convolutions kept in float32 by :func:`quantize_onnx_int8` (see its measurements)."""


def quantize_onnx_int8(
    fp32_path: Path,
    path: Path,
    calibration: np.ndarray,
    float_convs: int = FLOAT_STEM_CONVS,
    chunk: int = CALIBRATION_CHUNK,
) -> Path:
    """Static QDQ quantization: per-channel int8 weights, uint8 activations, percentile calibration,
    the first ``float_convs`` convolutions and the softmax left in float32; calibrated at most
    ``chunk`` images at a time (see :data:`CALIBRATION_CHUNK`).

    The scheme, and what else was measured, is in this module's docstring.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    input_name = graph.input[0].name
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    float_nodes = [n.name for n in graph.node if n.op_type == "Softmax"] + convs[:float_convs]
    reader = _Calibration(input_name, calibration, chunk)
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        with native_output_to(os.devnull, stdout=True, stderr=False):  # the calibrator prints its settings
            quantize_static(
                str(prepped),
                str(path),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=float_nodes,
                extra_options={"CalibStridedMinMax": reader.chunk},
            )
    return path
