"""onnxruntime's calibrator holds every activation of every image it is given; `kneeoa convert`
feeds it in chunks so memory is bounded by one chunk. Chunking must not change what is calibrated
beyond the histogram's binning."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("n", "most", "chunk"), [(1000, 100, 100), (826, 100, 59), (20, 100, 20), (197, 100, 1), (97, 100, 97)]
)
def test_chunks_are_equal_and_at_most_the_limit(n, most, chunk):
    from kneeoa_convert.onnx_export import calibration_chunk

    assert calibration_chunk(n, most) == chunk
    assert n % chunk == 0


def test_the_reader_gives_each_image_once_across_chunks():
    from kneeoa_convert.onnx_export import _Calibration

    x = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    reader = _Calibration("input", x)
    seen = []
    for start in range(0, len(reader), 4):
        reader.set_range(start_index=start, end_index=start + 4)
        while (item := reader.get_next()) is not None:
            seen.append(float(item["input"][0, 0, 0, 0]))
    assert seen == list(range(12))


def test_a_chunked_calibration_quantizes_like_a_whole_one(model_dir, knee_dataset, tmp_path):
    import onnxruntime as ort

    from edge_infer.manifest import load_manifest
    from kneeoa_convert.calibration import draw_sample
    from kneeoa_convert.onnx_export import quantize_onnx_int8

    x = draw_sample(knee_dataset / "train", 20, load_manifest(model_dir).preprocess).x
    whole = quantize_onnx_int8(model_dir / "model.fp32.onnx", tmp_path / "whole.onnx", x, chunk=20)
    chunked = quantize_onnx_int8(model_dir / "model.fp32.onnx", tmp_path / "chunked.onnx", x, chunk=5)
    probs = []
    for path in (whole, chunked):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        probs.append(
            np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i : i + 1]})[0] for i in range(20)])
        )
    assert np.abs(probs[0] - probs[1]).max() < 0.05
    assert (probs[0].argmax(1) == probs[1].argmax(1)).mean() >= 0.9
