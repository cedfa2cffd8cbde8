"""Inference engines behind one small interface: onnxruntime and LiteRT.

A runtime is created from a model file and the manifest's contract, checks at load time that the
file's real input and outputs are what the manifest promises (failing with "expected …, got …"),
and returns outputs by role (``probabilities``, ``features``), never by position.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from .errors import ModelContractError, RuntimeUnavailableError
from .formats import Engine, ModelFormat
from .quiet import native_output_to

LITERT_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
INSTALL_HINTS = {
    Engine.ONNXRUNTIME: 'ONNX formats need onnxruntime: pip install "kneeoa"',
    Engine.LITERT: 'TFLite formats need LiteRT: pip install "kneeoa[tflite]"',
}
TFLITE_SIGNATURE = "serve"
ORT_SESSION_CONFIG = {"session.force_spinning_stop": "1"}
"""onnxruntime's idle workers spin, to bridge the gaps between operators inside a run; by default
they go on spinning after the run returns, holding a core the thread decoding the next knee needs.
This stops them when the run ends (spinning resumes with the next run). Measured on 2 cores, 2
threads, onnx-int8 at 128 px, one process per setting, 25 rounds of 32 knees alternating raw
invokes and a decode-ahead batch, as ``kneeoa bench`` measures them:
batch per knee against the raw invoke 1.27–1.31× by default, 1.18–1.23× with this, the raw invoke
unchanged (5.2–6.2 ms in both). ``allow_spinning 0`` gave 1.07–1.09× but made the invoke 20% slower."""


def engine_available(engine: Engine) -> bool:
    """Whether the engine's Python package is installed (without importing it)."""
    if engine is Engine.ONNXRUNTIME:
        return importlib.util.find_spec("onnxruntime") is not None
    return any(importlib.util.find_spec(m.split(".")[0]) is not None for m in LITERT_MODULES)


class Runtime(ABC):
    """Runs one model file.

    Contract: input ``float32`` ``(1, size, size, channels)`` preprocessed as the manifest says;
    :meth:`run` returns ``{"probabilities": (1, n_classes), "features": (1, h, w, c)}``, arrays
    that belong to the caller. :meth:`run` may be called from several threads at once (each
    engine below says how); :meth:`close` must not run while another thread is in :meth:`run`.

    ``path`` names the file (in messages); ``content``, when given, is the model itself: the bytes
    whose checksum the manifest verified, so the engine runs exactly what was checked rather than
    opening the file a second time.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path, outputs: dict[str, str], input_shape: tuple, output_shapes: dict[str, tuple]):
        self.path = Path(path)
        self.outputs = outputs
        self.expected_input = tuple(input_shape)
        self.expected_outputs = {k: tuple(v) for k, v in output_shapes.items()}

    @abstractmethod
    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one preprocessed batch of one image; returns outputs by role."""

    def close(self) -> None:  # noqa: B027 - engines without resources to free keep this no-op
        """Release the engine's session or interpreter."""

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _verify_contract(self, n_inputs: int, input_shape: tuple, found: dict[str, tuple]) -> None:
        """Compare the file's real input and outputs with the manifest's; raise "expected …, got …"."""
        if n_inputs != 1:
            raise ModelContractError(f"{self.path}: expected 1 input, got {n_inputs}")
        self._check("input", self.expected_input, input_shape)
        for role, name in self.outputs.items():
            if name not in found:
                raise ModelContractError(
                    f"{self.path}: expected an output named {name!r} ({role}), got {sorted(found)}"
                )
            self._check(f"output {name!r}", self.expected_outputs[role], found[name])

    def _check(self, what: str, expected: tuple, got: tuple) -> None:
        # Dynamic dimensions (None, -1, symbolic names) match anything.
        ok = len(expected) == len(got) and all(
            not isinstance(g, int) or g in (-1, 0) or e is None or e == g for e, g in zip(expected, got, strict=True)
        )
        if not ok:
            raise ModelContractError(f"{self.path}: {what} expected shape {expected}, got {tuple(got)}")


class OnnxRuntime(Runtime):
    """An ``.onnx`` file in onnxruntime's CPU execution provider. ``InferenceSession.run`` is
    thread-safe (onnxruntime's documented contract, and tests/test_thread_safety.py), so threads
    run concurrently, without a lock."""

    def __init__(
        self, path, outputs, input_shape, output_shapes, threads: int | None = None, content: bytes | None = None
    ):
        super().__init__(path, outputs, input_shape, output_shapes)
        if not engine_available(Engine.ONNXRUNTIME):
            raise RuntimeUnavailableError(INSTALL_HINTS[Engine.ONNXRUNTIME])
        from . import ONNXRUNTIME_TELEMETRY_ON

        if ONNXRUNTIME_TELEMETRY_ON:
            raise RuntimeUnavailableError(
                "onnxruntime was imported before edge_infer with its telemetry on (it would send usage events); "
                "import edge_infer first, or set ORT_DISABLE_TELEMETRY=1 before Python starts"
            )
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        for key, value in ORT_SESSION_CONFIG.items():
            opts.add_session_config_entry(key, value)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            model = content if content is not None else str(path)
            self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelContractError(f"{path}: onnxruntime cannot load it ({e})") from None
        inp = self._session.get_inputs()
        found = {o.name: tuple(o.shape) for o in self._session.get_outputs()}
        self._verify_contract(len(inp), tuple(inp[0].shape) if inp else (), found)
        self._input = inp[0].name
        self._names = list(outputs.values())

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._names, {self._input: x})
        return dict(zip(self.outputs, values, strict=True))

    def close(self) -> None:
        self._session = None


def import_engine(engine: Engine) -> None:
    """Import an engine's Python package now (e.g. so a timing can leave the import out).

    Raises:
        RuntimeUnavailableError: it is not installed (the message names the extra).
    """
    if engine is Engine.ONNXRUNTIME:
        if importlib.util.find_spec("onnxruntime") is None:
            raise RuntimeUnavailableError(INSTALL_HINTS[Engine.ONNXRUNTIME])
        importlib.import_module("onnxruntime")
    else:
        litert_interpreter_class()


def litert_interpreter_class():
    """LiteRT's ``Interpreter`` class from the first installed of :data:`LITERT_MODULES`."""
    for module in LITERT_MODULES:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            return importlib.import_module(module).Interpreter
    raise RuntimeUnavailableError(INSTALL_HINTS[Engine.LITERT])


class LiteRTRuntime(Runtime):
    """A ``.tflite`` file in LiteRT (``ai-edge-litert``; ``tflite-runtime`` as a fallback), through
    its ``serve`` signature so outputs are found by name. XNNPACK's banner is kept off stderr.

    A LiteRT interpreter is not thread-safe: its input and output tensors are single buffers, so
    two threads invoking at once read each other's results. :meth:`run` holds a lock from setting
    the input to copying the outputs out; threads take turns on the one interpreter, which uses
    every core it was given (measured against one interpreter per thread in
    ``benchmarks/thread_sharing.py``; results in ``benchmarks/THREADS.md``)."""

    def __init__(
        self,
        path,
        outputs,
        input_shape,
        output_shapes,
        threads: int | None = None,
        verbose: bool = False,
        content: bytes | None = None,
    ):
        super().__init__(path, outputs, input_shape, output_shapes)
        interpreter_class = litert_interpreter_class()
        self._lock = threading.Lock()
        self._content = content  # the interpreter reads the model from this buffer for its lifetime
        source = {"model_content": content} if content is not None else {"model_path": str(path)}
        with contextlib.nullcontext() if verbose else native_output_to(os.devnull):
            try:
                self._interp = interpreter_class(**source, num_threads=threads or os.cpu_count() or 1)
                signatures = self._interp.get_signature_list()
                if TFLITE_SIGNATURE not in signatures:
                    raise ModelContractError(
                        f"{path}: expected a {TFLITE_SIGNATURE!r} signature, got {sorted(signatures)}"
                    )
                self._runner = self._interp.get_signature_runner(TFLITE_SIGNATURE)
            except (ValueError, RuntimeError) as e:
                raise ModelContractError(f"{path}: LiteRT cannot load it ({e})") from None
            sig_in = list(self._runner.get_input_details().items())
            found = {k: tuple(int(v) for v in d["shape"]) for k, d in self._runner.get_output_details().items()}
            self._verify_contract(len(sig_in), tuple(int(v) for v in sig_in[0][1]["shape"]) if sig_in else (), found)
            self._input = sig_in[0][0]
            # XNNPACK prints its banner at the first invoke: do that here, silenced.
            self.run(np.zeros([1, *self.expected_input[1:]], np.float32))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:  # set input, invoke and read outputs as one step (see the class docstring)
            result = self._runner(**{self._input: x})
            return {role: np.array(result[name], copy=True) for role, name in self.outputs.items()}

    def close(self) -> None:
        with self._lock:
            self._runner = self._interp = self._content = None


def open_runtime(
    fmt: ModelFormat,
    path: Path,
    outputs: dict[str, str],
    input_shape: tuple,
    output_shapes: dict[str, tuple],
    threads: int | None = None,
    verbose: bool = False,
    content: bytes | None = None,
) -> Runtime:
    """Create the runtime for ``fmt``; raises :class:`RuntimeUnavailableError` naming the extra to install.

    Args:
        content: The model file's bytes, already read and checksummed
            (:meth:`edge_infer.manifest.Manifest.artifact_bytes`); ``path`` then only names it.
    """
    if fmt.engine is Engine.LITERT:
        return LiteRTRuntime(
            path, outputs, input_shape, output_shapes, threads=threads, verbose=verbose, content=content
        )
    return OnnxRuntime(path, outputs, input_shape, output_shapes, threads=threads, content=content)


def device_probabilities(raw: np.ndarray) -> np.ndarray:
    """The probabilities the device reports for a model's raw softmax output(s), ``(classes,)`` or
    ``(n, classes)``: float64, renormalised to sum to 1. Full-int8 softmax outputs come in steps of
    1/256 and need not sum to exactly 1; an all-zero row becomes uniform. Conversion checks measure
    these, so the manifest's figures are those of what ``edge-infer`` prints.

    Raises:
        ValueError: an output that is not finite (NaN or inf): no answer can be made of it.
    """
    p = np.asarray(raw, np.float64)
    if not np.isfinite(p).all():
        raise ValueError("the model's output is not finite (NaN or inf)")
    total = p.sum(-1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[-1])
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)
