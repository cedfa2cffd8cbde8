"""onnxruntime's calibrator holds every activation of every image it is given; `kneeoa convert`
feeds it in chunks so memory is bounded by one chunk. Chunking must read every image once and
change what is calibrated no more than the histogram's binning does."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(("n", "chunk", "ranges"), [(12, 4, 3), (13, 4, 4), (7, 100, 1), (499, 100, 5)])
def test_the_reader_gives_each_image_once_in_chunks_however_many_images(n, chunk, ranges):
    """onnxruntime strides ``range(0, len(reader), chunk)`` and needs len divisible by the chunk."""
    from kneeoa_convert.onnx_export import _Calibration

    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    reader = _Calibration("input", x, chunk)
    assert len(reader) % reader.chunk == 0
    seen, sizes = [], []
    for start in range(0, len(reader), reader.chunk):
        reader.set_range(start_index=start, end_index=start + reader.chunk)
        got = []
        while (item := reader.get_next()) is not None:
            got.append(float(item["input"][0, 0, 0, 0]))
        seen += got
        sizes.append(len(got))
    assert seen == list(range(n))
    assert len(sizes) == ranges and max(sizes) <= chunk and min(sizes) >= 1


def test_a_chunked_calibration_quantizes_like_a_whole_one(model_dir, knee_dataset, tmp_path, monkeypatch):
    import onnxruntime as ort

    from edge_infer.manifest import load_manifest
    from kneeoa_convert import onnx_export
    from kneeoa_convert.calibration import draw_sample
    from kneeoa_convert.onnx_export import quantize_onnx_int8

    x = draw_sample(knee_dataset / "train", 20, load_manifest(model_dir).preprocess).x
    ranges = []
    real_set_range = onnx_export._Calibration.set_range

    def recording(reader, start_index, end_index):  # the real method, its calls recorded
        ranges.append((start_index, end_index))
        real_set_range(reader, start_index, end_index)

    monkeypatch.setattr(onnx_export._Calibration, "set_range", recording)
    whole = quantize_onnx_int8(model_dir / "model.fp32.onnx", tmp_path / "whole.onnx", x, chunk=20)
    assert ranges == [(0, 20), (0, 20)], "one chunk: the reader's own start, then onnxruntime's one range"
    ranges.clear()
    chunked = quantize_onnx_int8(model_dir / "model.fp32.onnx", tmp_path / "chunked.onnx", x, chunk=7)
    assert ranges == [(0, 20), (0, 7), (7, 14), (14, 21)], "onnxruntime fed the calibrator 7, 7 and 6 images"
    probs = []
    for path in (whole, chunked):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        probs.append(np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(20)]))
    assert np.abs(probs[0] - probs[1]).max() < 0.05
    assert (probs[0].argmax(1) == probs[1].argmax(1)).mean() >= 0.9
