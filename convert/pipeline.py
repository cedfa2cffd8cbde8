"""``kneeoa convert``: every requested format, checked against Keras, described in one manifest."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_infer.formats import FORMATS, Engine, ModelFormat
from edge_infer.manifest import MANIFEST_FILE, SCHEMA_VERSION, load_manifest, sha256_file
from edge_infer.preprocess import PreprocessSpec
from edge_infer.runtimes import open_runtime

from .calibration import ImageSample, draw_sample
from .onnx_export import OPSET, export_onnx_fp32, quantize_onnx_int8
from .parity import keras_reference, measure_parity
from .source import FEATURES_OUTPUT, PROBS_OUTPUT, SourceModel, load_source
from .tflite_export import export_tflite

log = logging.getLogger(__name__)

HEAD_FILE = "head.npz"
KNEEKL224_CITATION = (
    'Chen, Pingjun (2018), "Knee Osteoarthritis Severity Grading Dataset", Mendeley Data, V1, '
    "doi:10.17632/56rmx5bjcr.1, CC BY 4.0; images derived from the Osteoarthritis Initiative (OAI)."
)
INTENDED_USE = (
    "Screening aid that grades single-knee posterior-anterior X-ray crops on the Kellgren-Lawrence "
    "scale and flags KL >= 2 as osteoarthritis. Not a diagnostic device; a clinician reads the image."
)


@dataclass(frozen=True)
class ConvertOptions:
    """What ``kneeoa convert`` writes and how it checks it.

    Attributes:
        formats: Format names, written in registry order.
        calibration_dir: Real images (class sub-folders) for int8 calibration.
        calibration_size: Images drawn for calibration (class-balanced, shuffled).
        verify_dir: Labelled images for the parity check; default ``calibration_dir``.
        verify_size: Images drawn for the parity check.
        default_format: Format ``edge-infer`` uses by default.
        name: Model name in the manifest.
        seed: Seed of the class-balanced draws.
    """

    formats: tuple[str, ...]
    calibration_dir: Path | None = None
    calibration_size: int = 200
    verify_dir: Path | None = None
    verify_size: int = 200
    default_format: str | None = None
    name: str | None = None
    seed: int = 0


def _write_format(fmt: ModelFormat, src: SourceModel, out_dir: Path, calib: ImageSample | None, work: Path) -> Path:
    path = out_dir / fmt.filename
    size = src.input_size
    if fmt.name == "onnx-fp32":
        return export_onnx_fp32(src.export, size, path)
    if fmt.name == "onnx-int8":
        fp32 = out_dir / FORMATS["onnx-fp32"].filename
        if not fp32.exists():
            fp32 = export_onnx_fp32(src.export, size, work / "fp32.onnx")
        return quantize_onnx_int8(fp32, path, calib.x)
    mode = fmt.name.removeprefix("tflite-")
    return export_tflite(src.export, size, path, mode, calib.x if calib else None)


def _quantization_info(fmt: ModelFormat, calib: ImageSample | None) -> dict:
    info = {"precision": fmt.precision, "method": fmt.description}
    if fmt.name in ("onnx-int8", "tflite-int8"):
        info["calibration"] = {"images": int(len(calib.x)), "source": calib.source, "per_class": calib.counts,
                               "draw": "class-balanced, shuffled"}
    return info


def convert_model(model_path: str | Path, out_dir: str | Path, opts: ConvertOptions) -> Path:
    """Convert a ``kneeoa train`` model to ``opts.formats`` and write ``out_dir/manifest.json``.

    Raises:
        FileNotFoundError: missing model config or image folders.
        ValueError: calibration images needed but not given; unknown format.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in FORMATS if n in opts.formats]
    needs_calibration = any(n in ("onnx-int8", "tflite-int8") for n in names)
    verify_dir = opts.verify_dir or opts.calibration_dir
    if verify_dir is None or (needs_calibration and opts.calibration_dir is None):
        raise ValueError("give --calibration DIR (real images in class sub-folders): int8 formats are calibrated "
                         "on it and every format is checked against Keras on it (or on --verify DIR)")
    src = load_source(model_path)
    spec = PreprocessSpec.from_dict(src.config["preprocess"])
    calib = draw_sample(opts.calibration_dir, opts.calibration_size, spec, opts.seed) if needs_calibration else None
    verify = draw_sample(verify_dir, opts.verify_size, spec, opts.seed + 1)
    _check_classes(verify, src.config)
    ref_probs, ref_feats = keras_reference(src.export, verify.x)
    head = src.head()
    np.savez(out_dir / HEAD_FILE, **head)

    artifacts = {}
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            fmt = FORMATS[name]
            t0 = time.perf_counter()
            path = _write_format(fmt, src, out_dir, calib, Path(work))
            seconds = time.perf_counter() - t0
            with open_runtime(fmt, path, _output_names(), (None, spec.size, spec.size, spec.channels),
                              {"probabilities": (None, len(src.config["classes"])), "features": (None, *ref_feats.shape[1:])}) as rt:
                parity = measure_parity(rt, verify.x, verify.labels, ref_probs, ref_feats, head)
            parity["source"] = verify.source
            artifacts[name] = {
                "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                "engine": fmt.engine.value, "quantization": _quantization_info(fmt, calib),
                "parity_vs_keras": parity, "convert_seconds": round(seconds, 1),
            }
            log.info("%s: %s, %.1f MB, top-1 agreement %.3f, max |Δp| %.4f, Grad-CAM r %.3f",
                     name, path.name, path.stat().st_size / 1e6, parity["top1_agreement"], parity["max_abs_dp"], parity["gradcam_r_mean"])

    manifest = _manifest(src, spec, ref_feats.shape[1:], artifacts, out_dir, opts)
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    load_manifest(out_dir)  # what we wrote must be what the device accepts
    return path


def _output_names() -> dict[str, str]:
    return {"probabilities": PROBS_OUTPUT, "features": FEATURES_OUTPUT}


def _check_classes(sample: ImageSample, config: dict) -> None:
    if sample.classes != config["classes"]:
        raise ValueError(f"{sample.source}: classes {sample.classes} differ from the model's {config['classes']}")


def _default_format(names: list[str], requested: str | None) -> str:
    if requested:
        return requested
    for preferred in ("onnx-int8", "onnx-fp32"):
        if preferred in names:
            return preferred
    onnx = [n for n in names if FORMATS[n].engine is Engine.ONNXRUNTIME]
    return (onnx or names)[0]


def _manifest(src: SourceModel, spec: PreprocessSpec, feature_shape, artifacts: dict, out_dir: Path, opts: ConvertOptions) -> dict:
    cfg = src.config
    train_cfg = cfg.get("train", {})
    metrics_path = src.path.with_name("metrics.json")
    data_dirs = " ".join(str(train_cfg.get(k, "")) for k in ("train_dir", "val_dir"))
    return {
        "schema_version": SCHEMA_VERSION,
        "name": opts.name or src.path.parent.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "intended_use": INTENDED_USE,
        "classes": cfg["classes"],
        "kl_grades": cfg["kl_grades"],
        "screening": cfg["screening"],
        "preprocess": spec.to_dict(),
        "outputs": {
            "probabilities": {"name": PROBS_OUTPUT, "shape": [None, len(cfg["classes"])], "activation": "softmax"},
            "features": {"name": FEATURES_OUTPUT, "shape": [None, *[int(v) for v in feature_shape]], "layer": src.feature_layer},
        },
        "gradcam_head": {
            "file": HEAD_FILE, "sha256": sha256_file(out_dir / HEAD_FILE),
            "architecture": "global average pooling -> [Dense+ReLU] -> Dense (logits) -> softmax",
            "method": "exact Grad-CAM from the feature map and the head's weights (edge_infer.gradcam)",
        },
        "artifacts": artifacts,
        "default_format": _default_format(list(artifacts), opts.default_format),
        "source_model": {"file": src.path.name, "sha256": sha256_file(src.path), "onnx_opset": OPSET},
        "training": {
            "config": train_cfg,
            "counts": cfg.get("counts"),
            "validation": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
            "data_citation": KNEEKL224_CITATION if "kneeKL224" in data_dirs else None,
        },
    }
