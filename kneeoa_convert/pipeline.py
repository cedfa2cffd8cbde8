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
from edge_infer.gate import GATE_FILE
from edge_infer.manifest import MANIFEST_FILE, SCHEMA_VERSION, load_manifest, sha256_file
from edge_infer.metrics import json_safe
from edge_infer.preprocess import PreprocessSpec
from edge_infer.runtimes import open_runtime
from edge_infer.screening import Screening

from .calibration import ImageSample, draw_sample
from .errors import ConvertError, ParityFloorError
from .gate import DEFAULT_TARGET, fit_gate, record_gate
from .model_card import write_model_card
from .onnx_export import OPSET, export_onnx_fp32, quantize_onnx_int8
from .parity import keras_reference, measure_parity, pairwise_agreement
from .selftest import record_self_test
from .source import FEATURES_OUTPUT, PROBS_OUTPUT, SourceModel, load_source, model_gflop
from .tflite_export import convert_saved_model, write_saved_model
from .uncertainty import REFER_SENSITIVITY, REFER_SPECIFICITY, calibrate_model

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
        command: The command line that ran this conversion, recorded in the manifest.
        min_agreement: Floor on a format's top-1 agreement with the Keras model.
        min_gradcam_r: Floor on the mean Pearson r of its Grad-CAM with the Keras model's.
        ship: Formats to keep in ``out_dir`` (default: every one that passes the floors); the
            others are measured, then removed and recorded as dropped (e.g. large float files
            that stay out of git and are rebuilt from the ``.keras`` file).
        notes: Markdown recorded in the manifest and shown in the model card (e.g. what was
            tried and how far the model is from its targets).
        gate: Fit the input gate (:mod:`kneeoa_convert.gate`) on ``calibration_dir`` (training
            images) and set its thresholds on ``verify_dir`` (validation knees).
        gate_images: Training images drawn to fit the gate.
        gate_target: False refusals allowed on the validation knees.
        calibrate: Fit each shipped format's temperature and refer band
            (:mod:`kneeoa_convert.uncertainty`) on ``verify_dir``; needs ``verify_dir`` given
            (validation knees), else skipped with a warning.
        refer_sensitivity: Sensitivity the knees called outside the refer band must reach.
        refer_specificity: Specificity they must reach.
    """

    formats: tuple[str, ...]
    calibration_dir: Path | None = None
    calibration_size: int = 500
    verify_dir: Path | None = None
    verify_size: int = 200
    default_format: str | None = None
    name: str | None = None
    seed: int = 0
    command: str | None = None
    min_agreement: float = 0.97
    min_gradcam_r: float = 0.9
    ship: tuple[str, ...] | None = None
    notes: str | None = None
    gate: bool = True
    gate_images: int = 1500
    gate_target: float = DEFAULT_TARGET
    calibrate: bool = True
    refer_sensitivity: float = REFER_SENSITIVITY
    refer_specificity: float = REFER_SPECIFICITY


@dataclass
class _Exports:
    """One conversion's work folder and the intermediate exports its formats share, each made at
    most once: the float32 ONNX that int8 quantizes from, and the SavedModel that every TFLite
    variant converts from.

    Attributes:
        src: The model being converted.
        work: Temporary folder, removed when the conversion ends.
        onnx_fp32: The float32 ONNX written by this run (in ``out_dir`` or ``work``), if any.
        saved_model: The SavedModel written by this run into ``work``, if any.
    """

    src: SourceModel
    work: Path
    onnx_fp32: Path | None = None
    saved_model: Path | None = None

    def write_onnx_fp32(self, path: Path) -> Path:
        """Export the float32 ONNX to ``path`` and remember it as this run's."""
        self.onnx_fp32 = export_onnx_fp32(self.src.export, self.src.input_size, path)
        return self.onnx_fp32

    def float_onnx(self) -> Path:
        """This run's float32 ONNX (never a stale file left in ``out_dir`` by an earlier run)."""
        return self.onnx_fp32 or self.write_onnx_fp32(self.work / "fp32.onnx")

    def tflite_source(self) -> Path:
        """The SavedModel the TFLite variants convert from, written on the first call."""
        if self.saved_model is None:
            self.saved_model = write_saved_model(self.src.export, self.src.input_size, self.work / "saved_model")
        return self.saved_model


def _write_format(fmt: ModelFormat, out_dir: Path, calib: ImageSample | None, exports: _Exports) -> Path:
    path = out_dir / fmt.filename
    if fmt.engine is Engine.LITERT:
        return convert_saved_model(exports.tflite_source(), path, fmt.variant, calib.x if calib else None)
    if fmt.variant == "fp32":
        return exports.write_onnx_fp32(path)
    return quantize_onnx_int8(exports.float_onnx(), path, calib.x)


def _quantization_info(fmt: ModelFormat, calib: ImageSample | None) -> dict:
    info = {"precision": fmt.precision, "method": fmt.description}
    if fmt.calibrated:
        info["calibration"] = {
            "images": len(calib.x),
            "source": calib.source,
            "per_class": calib.counts,
            "draw": "class-balanced, shuffled",
        }
    return info


def convert_model(model_path: str | Path, out_dir: str | Path, opts: ConvertOptions) -> Path:
    """Convert a ``kneeoa train`` model to ``opts.formats`` and write ``out_dir/manifest.json``.

    Raises:
        DatasetError: missing or empty image folders.
        ConvertError: missing model config, calibration images needed but not given.
        ParityFloorError: formats below the parity floors (the others are written).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in FORMATS if n in opts.formats]
    needs_calibration = any(FORMATS[n].calibrated for n in names)
    verify_dir = opts.verify_dir or opts.calibration_dir
    if opts.gate and opts.calibration_dir is None:
        raise ConvertError("the input gate is fitted on --calibration DIR (training images): give it, or --no-gate")
    if verify_dir is None or (needs_calibration and opts.calibration_dir is None):
        raise ConvertError(
            "give --calibration DIR (real images in class sub-folders): int8 formats are calibrated "
            "on it and every format is checked against Keras on it (or on --verify DIR)"
        )
    src = load_source(model_path)
    spec = PreprocessSpec.from_dict(src.config["preprocess"])
    calib = draw_sample(opts.calibration_dir, opts.calibration_size, spec, opts.seed) if needs_calibration else None
    ref = _reference(src, draw_sample(verify_dir, opts.verify_size, spec, opts.seed + 1))
    np.savez(out_dir / HEAD_FILE, **ref.head)
    artifacts, predictions = {}, {}
    with tempfile.TemporaryDirectory() as work:
        exports = _Exports(src, Path(work))
        for name in names:
            artifacts[name], predictions[name] = _build_artifact(FORMATS[name], spec, out_dir, calib, ref, exports)
    rejected = apply_floors(artifacts, opts)
    dropped = {n: {"reason": why, **artifacts.pop(n)} for n, why in rejected.items()}
    for name in [n for n in artifacts if opts.ship is not None and n not in opts.ship]:
        size = artifacts[name]["bytes"] / 1e6
        why = (
            f"left out by --ship ({FORMATS[name].precision}, {size:.1f} MB); "
            f"rebuild it with `kneeoa convert {src.path.name} --formats {name}`"
        )
        dropped[name] = {"reason": why, **artifacts.pop(name)}
    for entry in dropped.values():
        (out_dir / entry["file"]).unlink(missing_ok=True)
    if not artifacts:
        raise ParityFloorError(f"{out_dir}: no format left to ship: {rejected or 'none of --ship was written'}")
    manifest = _manifest(src, spec, ref.features.shape[1:], artifacts, out_dir, opts)
    manifest["agreement_between_formats"] = pairwise_agreement({n: predictions[n] for n in artifacts})
    manifest["dropped_formats"] = {
        n: {k: v for k, v in e.items() if k not in ("file", "sha256")} for n, e in dropped.items()
    }
    path = out_dir / MANIFEST_FILE
    (out_dir / GATE_FILE).unlink(missing_ok=True)  # never ship a gate fitted to an earlier model
    path.write_text(json.dumps(json_safe(manifest), indent=2, allow_nan=False) + "\n")
    load_manifest(out_dir)  # what we wrote must be what the device accepts
    record_self_test(out_dir, command=opts.command)
    if opts.gate:
        block = fit_gate(out_dir, opts.calibration_dir, verify_dir, opts.gate_images, opts.gate_target, opts.seed)
        record_gate(out_dir, block)  # re-renders the model card
    else:
        write_model_card(out_dir)
    if opts.calibrate and opts.verify_dir is not None:  # on validation knees: never on the training images
        calibrate_model(out_dir, opts.verify_dir, opts.refer_sensitivity, opts.refer_specificity)
    elif opts.calibrate:
        log.warning("no --verify folder of validation knees: the probabilities are not calibrated and no knee is "
                    "referred; rerun with --verify, or run `kneeoa calibrate %s --val DIR`", out_dir)  # fmt: skip
    if rejected:
        raise ParityFloorError(
            f"{out_dir}: rejected {'; '.join(f'{n} ({why})' for n, why in rejected.items())}; "
            f"wrote {', '.join(artifacts)}. Lower --min-agreement/--min-gradcam-r only if you accept that."
        )
    return path


def apply_floors(artifacts: dict, opts: ConvertOptions) -> dict[str, str]:
    """Formats below the parity floors, with the reason."""
    rejected = {}
    for name, art in artifacts.items():
        p = art["parity_vs_keras"]
        problems = []
        if p["top1_agreement"] < opts.min_agreement:
            problems.append(f"top-1 agreement with Keras {p['top1_agreement']:.3f} < {opts.min_agreement}")
        if p["gradcam_r_mean"] < opts.min_gradcam_r:
            problems.append(f"Grad-CAM r {p['gradcam_r_mean']:.3f} < {opts.min_gradcam_r}")
        if problems:
            rejected[name] = f"{', '.join(problems)} on {p['n']} images"
    if opts.default_format in rejected:
        raise ParityFloorError(f"--default-format {opts.default_format} was rejected: {rejected[opts.default_format]}")
    return rejected


@dataclass(frozen=True)
class _Reference:
    """The float32 Keras model's answers on the verification images."""

    sample: ImageSample
    probs: np.ndarray
    features: np.ndarray
    head: dict
    screening: Screening | None


def _reference(src: SourceModel, sample: ImageSample) -> _Reference:
    classes = src.config["classes"]
    if sample.classes != classes:
        raise ConvertError(f"{sample.source}: classes {sample.classes} differ from the model's {classes}")
    screening = Screening.from_dict(src.config["screening"], classes) if src.config.get("screening") else None
    probs, feats = keras_reference(src.export, sample.x)
    return _Reference(sample, probs, feats, src.head(), screening)


def _build_artifact(
    fmt: ModelFormat, spec: PreprocessSpec, out_dir: Path, calib: ImageSample | None, ref: _Reference, exports: _Exports
) -> tuple[dict, np.ndarray]:
    """Write one format, run it on the edge runtime against Keras, and describe it for the manifest."""
    t0 = time.perf_counter()
    path = _write_format(fmt, out_dir, calib, exports)
    seconds = time.perf_counter() - t0
    outputs = {"probabilities": PROBS_OUTPUT, "features": FEATURES_OUTPUT}
    shapes = {"probabilities": (None, ref.probs.shape[1]), "features": (None, *ref.features.shape[1:])}
    with open_runtime(fmt, path, outputs, (None, spec.size, spec.size, spec.channels), shapes) as rt:
        parity, probs = measure_parity(
            rt, ref.sample.x, ref.sample.labels, ref.probs, ref.features, ref.head, ref.screening
        )
    parity["source"] = ref.sample.source
    parity["source_images"] = ref.sample.folder_total
    log.info(
        "%s: %s, %.1f MB, top-1 agreement %.3f, max |Δp| %.4f, Grad-CAM r %.3f, accuracy %.3f",
        fmt.name,
        path.name,
        path.stat().st_size / 1e6,
        parity["top1_agreement"],
        parity["max_abs_dp"],
        parity["gradcam_r_mean"],
        parity["accuracy"],
    )
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "engine": fmt.engine.value,
        "quantization": _quantization_info(fmt, calib),
        "parity_vs_keras": parity,
        "convert_seconds": round(seconds, 1),
    }, probs


def _default_format(names: list[str], requested: str | None) -> str:
    """The requested format, else the first of: calibrated ONNX (fast, small, in the base install),
    any ONNX, anything."""
    if requested:
        return requested
    onnx = [n for n in names if FORMATS[n].engine is Engine.ONNXRUNTIME]
    return ([n for n in onnx if FORMATS[n].calibrated] or onnx or names)[0]


def earlier_stages(train_cfg: dict, limit: int = 8) -> list[dict]:
    """The runs this one started from (``--init-from``, progressive resizing), oldest first, each
    with its configuration and selected validation figures as its run directory recorded them."""
    stages: list[dict] = []
    cfg = train_cfg
    while cfg.get("init_from") and len(stages) < limit:
        run = Path(cfg["init_from"]).parent
        config_path = run / "config.json"
        if not config_path.is_file():
            stages.append(
                {"config": None, "init_from": cfg["init_from"], "note": "run directory not found at conversion"}
            )
            break
        cfg = json.loads(config_path.read_text())["train"]
        metrics = run / "metrics.json"
        stages.append({"config": cfg, "validation": json.loads(metrics.read_text()) if metrics.is_file() else None})
    return stages[::-1]


def _manifest(
    src: SourceModel, spec: PreprocessSpec, feature_shape, artifacts: dict, out_dir: Path, opts: ConvertOptions
) -> dict:
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
            "features": {
                "name": FEATURES_OUTPUT,
                "shape": [None, *[int(v) for v in feature_shape]],
                "layer": src.feature_layer,
            },
        },
        "gradcam_head": {
            "file": HEAD_FILE,
            "sha256": sha256_file(out_dir / HEAD_FILE),
            "architecture": "global average pooling -> [Dense+ReLU] -> Dense (logits) -> softmax",
            "method": "exact Grad-CAM from the feature map and the head's weights (edge_infer.gradcam)",
        },
        "artifacts": artifacts,
        "default_format": _default_format(list(artifacts), opts.default_format),
        "conversion": {
            "command": opts.command or "kneeoa convert (called from Python)",
            "calibration_size": opts.calibration_size,
            "verify_size": opts.verify_size,
            "seed": opts.seed,
        },
        "compute": {
            "gflop_per_image": round(model_gflop(src.model), 4),
            "counted": "2 x multiply-adds of the convolutions and dense layers, batch 1",
        },
        "source_model": {
            "file": src.path.name,
            "sha256": sha256_file(src.path),
            "bytes": src.path.stat().st_size,
            "onnx_opset": OPSET,
        },
        "notes": opts.notes,
        "training": {
            "config": train_cfg,
            "counts": cfg.get("counts"),
            "strategy": cfg.get("strategy"),
            "validation": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
            "earlier_stages": earlier_stages(train_cfg),
            "data_citation": KNEEKL224_CITATION if "kneeKL224" in data_dirs else None,
        },
    }
