"""The Python entry point: ``Classifier(model_dir, format, threads).predict(path_or_array)``, and
``predict_many(paths)`` for batches."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import selftest as self_test
from .calibration import IDENTITY, Calibration, calibration_of
from .decode import DecodedImage, check_shape, decode_image, pil_to_gray
from .errors import ConfigError, InputImageError, InputRefusedError, ModelContractError, RuntimeUnavailableError
from .formats import FORMATS, MAX_THREADS, Engine
from .gate import PASSED, GateVerdict, check_image
from .gradcam import cam_to_image, gradcam_from_features
from .manifest import Manifest, load_manifest
from .pipeline import DEFAULT_DEPTH
from .preprocess import SquarePadding, prepare_gray, square_padding, standardize_with_histogram, to_model_input
from .runtimes import INSTALL_HINTS, Runtime, device_probabilities, engine_available, open_runtime

if TYPE_CHECKING:
    from .batch import BatchResult

log = logging.getLogger(__name__)

GATE_MODES = ("enforce", "report", "off")


def default_model_dir() -> Path:
    """The shipped default model: installed as package data, or ``models/default`` in a checkout."""
    spec = importlib.util.find_spec("kneeoa_models")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "default"
            if candidate.is_dir():
                return candidate
    return Path(__file__).resolve().parent.parent / "models" / "default"


@dataclass(frozen=True)
class PreparedImage:
    """A decoded, preprocessed knee: what :meth:`Classifier.infer` needs.

    Attributes:
        gray: The input as ``uint8`` grey: at its original size, or scaled down to
            :data:`DISPLAY_MAX_SIDE` on its longest side when larger (:func:`display_copy`).
        small: The square ``uint8`` grey image at the model's input size.
        x: The model input, ``(1, size, size, channels)`` ``float32``.
        pad: Where the image sits in the padded square (to map the heatmap back).
        notes: What was done beyond decoding.
        verdict: The input gate's image checks (blank, aspect), made before inference.
    """

    gray: np.ndarray
    small: np.ndarray
    x: np.ndarray
    pad: SquarePadding
    notes: tuple[str, ...] = ()
    verdict: GateVerdict = PASSED


@dataclass(frozen=True)
class Prediction:
    """The result for one knee image.

    Attributes:
        label: Screening result (``"Normal"``, ``"Osteoarthritis"``, or ``"Refer"`` when the
            calibrated P(OA) falls in the format's refer band) for a model with a screening
            grouping; otherwise the top class.
        kl_grade: The most probable KL grade, or ``None`` for a model that does not grade KL.
        probabilities: Class name → probability (calibrated, when the manifest records a calibration).
        oa_probability: Summed probability of the positive classes (KL ≥ 2), or ``None``.
        class_index: Index of the top class (the class the heatmap explains).
        cam: Grad-CAM map in [0, 1] over ``image``, ``(height, width)``; ``None`` when
            :meth:`Classifier.predict` was asked for no heatmap.
        image: The input as ``uint8`` grey (for overlays): at its original size, or scaled down
            to :data:`DISPLAY_MAX_SIDE` on its longest side when larger.
        notes: What was done beyond decoding (e.g. which DICOM frame or window was used).
        gate: What the input gate said: ``passed``; ``forced: <reason>`` when it would have
            refused and ``--no-gate`` graded anyway; ``image checks only`` for a model without a
            fitted gate; ``off``.
    """

    label: str
    kl_grade: int | None
    probabilities: dict[str, float]
    oa_probability: float | None
    class_index: int
    cam: np.ndarray | None
    image: np.ndarray
    notes: tuple[str, ...] = ()
    gate: str = "off"

    def to_record(self, source: str, heatmap: str | None = None) -> dict:
        """The JSON record ``edge-infer --json`` prints."""
        return {
            "input": source,
            "label": self.label,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "oa_probability": None if self.oa_probability is None else round(self.oa_probability, 6),
            "kl_grade": self.kl_grade,
            "heatmap": heatmap,
            "notes": list(self.notes),
            "gate": self.gate,
        }


class Classifier:
    """A knee-OA classifier on the edge runtime (onnxruntime or LiteRT; no TensorFlow).

    Args:
        model_dir: Directory with ``manifest.json``; default: the shipped default model.
        format: Format name from :data:`edge_infer.formats.FORMATS`; default: the manifest's
            ``default_format``, or the first shipped format whose engine is installed.
        threads: Inference threads (default: the engine's choice for onnxruntime, all cores for LiteRT).
        verbose: Let runtime banners through to stderr.
        gate: The input gate (:mod:`edge_infer.gate`): ``enforce`` refuses what is not a
            single-knee crop like the training ones (:class:`InputRefusedError`); ``report``
            grades anyway and records that it was forced (``edge-infer --no-gate``, for research);
            ``off`` skips the checks (measurements of the gate's own cost).
        calibrate: Apply the format's calibration from the manifest (temperature scaling and the
            ``Refer`` band, :mod:`edge_infer.calibration`); ``False`` reports the network's own
            probabilities and only Normal/Osteoarthritis (what calibration is fitted on).

    Loading checks the model before it answers anything: the manifest against its schema, each
    file's place (inside the model folder) and sha256, the engine fed the very bytes that were
    hashed, the file's inputs and outputs against the manifest, and the manifest's self-test (a
    known input must give the recorded answer, :mod:`edge_infer.selftest`). A model converted
    before self-tests existed loads with a warning.

    Thread safety: one ``Classifier`` may be shared by any number of threads (a web server's
    workers): :meth:`predict`, :meth:`prepare`, :meth:`infer` and :meth:`predict_many` called at
    once from several threads give each call exactly the result it would get alone,
    probabilities and heatmap alike, in every format. onnxruntime runs the calls concurrently;
    LiteRT, whose interpreter is not thread-safe, runs one invoke at a time behind a lock (the
    interpreter itself uses every core given), while decoding, preprocessing, the input gate and
    Grad-CAM of the other threads go on in parallel. Open and :meth:`close` a ``Classifier`` from
    one thread, not while calls are running; creating several at once from different threads is safe.

    Raises:
        ManifestError: missing/invalid manifest (naming the file and the field), missing,
            corrupt or out-of-folder artifact.
        ModelContractError: a model whose inputs/outputs differ from the manifest, or whose
            self-test gives another answer than the one recorded.
        RuntimeUnavailableError: the format's engine is not installed (names the extra).
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        format: str | None = None,
        threads: int | None = None,
        verbose: bool = False,
        gate: str = "enforce",
        calibrate: bool = True,
    ):
        if gate not in GATE_MODES:
            raise ValueError(f"gate must be one of {GATE_MODES}, got {gate!r}")
        if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
            raise ConfigError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")
        self.gate_mode = gate
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.manifest: Manifest = load_manifest(self.model_dir)
        self.format = format or self._pick_format()
        m = self.manifest
        content = m.artifact_bytes(self.format)  # unknown, missing, corrupt or outside → ManifestError
        self._head = m.load_head()
        self._calibration = calibration_of(m, self.format) if calibrate else IDENTITY
        self._gate = m.load_gate(self.format) if gate != "off" else None
        if self._gate is None and gate != "off":
            log.warning("%s has no fitted input gate (converted before gates existed): only the image checks run; "
                        "fit one with `kneeoa gate`", self.model_dir)  # fmt: skip
        size, ch = m.preprocess.size, m.preprocess.channels
        self._runtime: Runtime = open_runtime(
            FORMATS[self.format],
            self.model_dir / m.artifacts[self.format].file,
            m.outputs,
            input_shape=(None, size, size, ch),
            output_shapes={"probabilities": (None, len(m.classes)), "features": (None, *m.feature_shape)},
            threads=threads,
            verbose=verbose,
            content=content,  # the bytes that were hashed, not a second read of the file
        )
        try:
            tested = self_test.verify(m, self.format, self._runtime)
        except BaseException:
            self._runtime.close()
            raise
        if not tested:
            log.warning("%s has no self-test (converted before self-tests existed): an edited manifest is caught "
                        "only by its schema; record one with `kneeoa selftest %s`", self.model_dir, self.model_dir)  # fmt: skip

    @property
    def calibration(self) -> Calibration:
        """The calibration applied to this format's answers (:data:`~edge_infer.calibration.IDENTITY` if none)."""
        return self._calibration

    @property
    def runtime(self) -> Runtime:
        """The loaded engine: ``runtime.run(x)`` on a preprocessed batch is the raw invoke."""
        return self._runtime

    def _pick_format(self) -> str:
        m = self.manifest
        if engine_available(m.artifacts[m.default_format].format.engine):
            return m.default_format
        for name, art in m.artifacts.items():
            if engine_available(art.format.engine):
                log.info(
                    "%s needs %s, which is not installed; using %s",
                    m.default_format,
                    FORMATS[m.default_format].engine.value,
                    name,
                )
                return name
        raise RuntimeUnavailableError(
            f"{self.model_dir}: no installed engine runs its formats ({', '.join(m.artifacts)}); "
            f"{INSTALL_HINTS[Engine.ONNXRUNTIME]}; {INSTALL_HINTS[Engine.LITERT]}"
        )

    def prepare(self, image: str | Path | np.ndarray, name: str = "<array>") -> PreparedImage:
        """Decode and preprocess one knee image, without touching the runtime (safe to call from
        another thread while :meth:`infer` runs).

        The intensity contract runs on the file's full-precision levels where it has them
        (:attr:`DecodedImage.levels`), and the image checks of the gate see the image as the
        contract made it (for a ``stored`` model: as decoded), with the histogram the contract
        already counted.

        Raises:
            InputImageError: the file or array is not a usable knee image.
        """
        decoded = decode_image(image) if isinstance(image, (str, Path)) else DecodedImage(_array_to_gray(image, name))
        spec = self.manifest.preprocess
        contract, histogram = standardize_with_histogram(decoded.gray, spec, decoded.levels)
        small, pad = prepare_gray(contract, spec.size)
        stored = decoded.gray if decoded.levels is not None and contract is not decoded.gray else None
        verdict = check_image(contract, histogram, stored) if self.gate_mode != "off" else PASSED
        # shown as the model saw it; the full-size image is not kept beyond this point
        gray, pad = display_copy(contract, pad)
        return PreparedImage(gray, small, to_model_input(small, spec), pad, decoded.notes, verdict)

    def infer(self, prepared: PreparedImage, heatmap: bool = True, source: str = "<array>") -> Prediction:
        """Run the network on an image from :meth:`prepare`; ``heatmap`` also computes Grad-CAM.

        Raises:
            InputRefusedError: the input gate refused it (not with ``gate="report"``).
        """
        enforce = self.gate_mode == "enforce"
        if enforce and not prepared.verdict.passed:  # refused on sight: no inference spent on it
            raise InputRefusedError(source, prepared.verdict.reason, prepared.verdict)
        out = self._runtime.run(prepared.x)
        verdict = prepared.verdict
        if verdict.passed and self._gate is not None and self.gate_mode != "off":
            verdict = self._gate.check(out["features"][0], prepared.small)
        if enforce and not verdict.passed:
            raise InputRefusedError(source, verdict.reason, verdict)
        if not np.isfinite(out["probabilities"][0]).all():  # never a plausible answer made of NaN
            raise ModelContractError(
                f"{source}: the model's output for this image is not finite (NaN or inf); no answer"
            )
        probs = self._calibration.apply(device_probabilities(out["probabilities"][0]))
        top = int(probs.argmax())
        cam = (
            cam_to_image(gradcam_from_features(out["features"][0], self._head, top), prepared.pad) if heatmap else None
        )
        return self._prediction(probs, top, cam, prepared, verdict)

    def predict(self, image: str | Path | np.ndarray, heatmap: bool = True) -> Prediction:
        """Classify one knee image: a file path, or a ``uint8`` array (grey ``(H, W)`` or RGB ``(H, W, 3)``).

        Args:
            image: The knee image.
            heatmap: Compute the Grad-CAM map (``Prediction.cam``); skip it for bulk scoring.

        Raises:
            InputImageError: the file or array is not a usable knee image.
        """
        source = str(image) if isinstance(image, (str, Path)) else "<array>"
        return self.infer(self.prepare(image), heatmap, source)

    def predict_many(
        self, images: Iterable, heatmap: bool = True, prefetch: int = DEFAULT_DEPTH
    ) -> Iterator[BatchResult]:
        """Classify a batch, decoding the next images in a background thread while the network runs
        (the batch engine, :func:`edge_infer.batch.run_batch`).

        Args:
            images: Paths or arrays, read lazily. An :class:`InputImageError` among them (a caller's
                own finding, such as an empty folder) is passed through as that item's result, in order.
            heatmap: As in :meth:`predict`.
            prefetch: Images prepared ahead; 0 decodes in line.

        Yields:
            One :class:`~edge_infer.batch.BatchResult` per image, in input order: its
            ``prediction``, or its ``error`` (one line) and ``exception``, so the batch goes on.
        """
        from .batch import run_batch

        yield from run_batch(self, images, heatmap=heatmap, prefetch=prefetch)

    def _prediction(
        self, probs: np.ndarray, top: int, cam: np.ndarray | None, prepared: PreparedImage, verdict: GateVerdict
    ) -> Prediction:
        m = self.manifest
        oa = None
        label = m.classes[top]
        if m.screening:
            oa = m.screening.score(probs)
            label = self._calibration.label(m.screening, oa)
        return Prediction(
            label=label,
            kl_grade=m.kl_grades[top] if m.kl_grades is not None else None,
            probabilities={c: float(p) for c, p in zip(m.classes, probs, strict=True)},
            oa_probability=oa,
            class_index=top,
            cam=cam,
            image=prepared.gray,
            notes=prepared.notes,
            gate=self._gate_status(verdict),
        )

    def _gate_status(self, verdict: GateVerdict) -> str:
        if self.gate_mode == "off":
            return "off"
        if not verdict.passed:
            return f"forced: {verdict.reason}"  # gate="report" (--no-gate): graded although refused
        return "passed" if self._gate is not None else "image checks only"

    def close(self) -> None:
        self._runtime.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _array_to_gray(arr: np.ndarray, name: str = "<array>") -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InputImageError(name, f"expected a uint8 (H, W) or (H, W, 3|4) array, got {a.dtype} {a.shape}")
    gray = a if a.ndim == 2 else pil_to_gray(Image.fromarray(a))
    check_shape(name, *gray.shape)
    return gray


DISPLAY_MAX_SIDE = 2048
"""Longest side, in pixels, of the image a result keeps for its heatmap (:attr:`Prediction.image`,
:attr:`Prediction.cam`). Larger inputs are scaled down for it, so a batch's memory stays bounded
whatever the input size: a Grad-CAM map from a 7×7 or 8×8 feature grid holds no finer detail."""


def display_copy(gray: np.ndarray, pad: SquarePadding) -> tuple[np.ndarray, SquarePadding]:
    """``gray`` scaled down to :data:`DISPLAY_MAX_SIDE` on its longest side if larger (area
    averaging), and where the smaller image sits in its square."""
    h, w = gray.shape
    if max(h, w) <= DISPLAY_MAX_SIDE:
        return gray, pad
    scale = DISPLAY_MAX_SIDE / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(gray).resize((nw, nh), Image.Resampling.BOX))
    return small, square_padding(nh, nw)
