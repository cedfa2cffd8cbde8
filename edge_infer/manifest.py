"""The model directory's ``manifest.json``: reading, validation and artifact checksums.

A model directory holds ``manifest.json``, one file per format and ``head.npz`` (the head's dense
weights for Grad-CAM; loaded with ``allow_pickle=False``). The manifest is the contract between
``convert`` and the device: classes, screening grouping, preprocessing, output names and shapes,
and each artifact's format, file and sha256. It is checked against an explicit schema
(:mod:`edge_infer.manifest_schema`) before anything is built from it.

Artifacts stay inside the model folder: a ``file`` is a plain file name (no directory, so no
absolute path and no ``..``), and a symbolic link that leads out of the folder is refused. Each
artifact is read once; its sha256 is computed on those bytes, and the same bytes go to the engine
(:meth:`Manifest.artifact_bytes`), so a file swapped after the check is never run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ManifestError
from .formats import FORMATS, ModelFormat
from .manifest_schema import FieldError, describe, validate_manifest
from .preprocess import PreprocessSpec
from .screening import Screening

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 2
"""Written by ``kneeoa convert``. 2 added ``preprocess.intensity``: a device whose edge_infer reads
only 1 must refuse such a model rather than feed it unstretched pixels."""
READABLE_SCHEMA_VERSIONS = (1, 2)
"""1: no intensity block (grey levels as stored)."""
OUTPUT_ROLES = ("probabilities", "features")
MAX_MANIFEST_BYTES = 4 << 20
"""A manifest is tens of kilobytes; anything past this is not one (and is not read into memory)."""
MAX_ARTIFACT_BYTES = 4 << 30


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """One converted file listed in the manifest."""

    format: ModelFormat
    file: str
    sha256: str
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``manifest.json``.

    Attributes:
        model_dir: Directory the manifest was read from.
        name: Model name.
        classes: Class names in output order.
        kl_grades: KL grade of each class, or ``None`` for a model that does not grade KL.
        screening: The screening rule, or ``None`` for a model without a screening grouping.
        preprocess: Input size, channels and value range.
        outputs: Role (``probabilities``/``features``) → output name in the model files.
        feature_shape: ``(height, width, channels)`` of the feature map.
        artifacts: Format name → artifact, in registry order.
        default_format: Format used when none is asked for.
        data: The raw JSON.
    """

    model_dir: Path
    name: str
    classes: list[str]
    kl_grades: list[int] | None
    screening: Screening | None
    preprocess: PreprocessSpec
    outputs: dict[str, str]
    feature_shape: tuple[int, int, int]
    artifacts: dict[str, Artifact]
    default_format: str
    data: dict

    def artifact_bytes(self, fmt: str) -> bytes:
        """A format's model file, read once and checked against its sha256: the bytes to hand to
        the engine (:func:`edge_infer.runtimes.open_runtime`'s ``content``).

        Raises:
            ManifestError: the format is not in this model directory, or its file is missing, not
                a regular file inside the folder, or differs from the manifest's sha256.
        """
        art = self._artifact(fmt)
        return self._checked_bytes(art.file, art.sha256, f"listed in {MANIFEST_FILE} as {fmt}")

    def artifact_path(self, fmt: str, verify_checksum: bool = True) -> Path:
        """Path of a format's file, after checking that it lies in the model folder, exists and
        (``verify_checksum``) matches its sha256. To load it, use :meth:`artifact_bytes`.

        Raises:
            ManifestError: as :meth:`artifact_bytes`.
        """
        art = self._artifact(fmt)
        what = f"listed in {MANIFEST_FILE} as {fmt}"
        if verify_checksum:
            self._checked_bytes(art.file, art.sha256, what)
        return self._confined(art.file, what)

    def _artifact(self, fmt: str) -> Artifact:
        if fmt not in self.artifacts:
            raise ManifestError(
                f"{self.model_dir}: no {fmt!r} model here; available: {', '.join(self.artifacts) or 'none'}"
            )
        return self.artifacts[fmt]

    def _confined(self, name: str, what: str) -> Path:
        """``model_dir / name`` resolved, after checking it stays in the model folder."""
        path = self.model_dir / name
        if Path(name).name != name or name in (".", ".."):  # the schema allows plain names only
            raise ManifestError(f"{path}: {what}, but a file must be a plain name in the model folder")
        try:
            real = path.resolve(strict=True)
            folder = self.model_dir.resolve(strict=True)
        except FileNotFoundError:
            raise ManifestError(f"{path}: {what} but missing; rebuild it with `kneeoa convert`") from None
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise ManifestError(f"{path}: {what}, but it cannot be resolved ({e})") from None
        if not real.is_relative_to(folder):
            raise ManifestError(f"{path}: {what}, but it is a link to {real}, outside the model folder; refused")
        return real

    def _checked_bytes(self, name: str, sha256: str, what: str) -> bytes:
        """The file's bytes, read once, after checking where it is and what it is; then their sha256."""
        path = self.model_dir / name
        real = self._confined(name, what)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:  # O_NOFOLLOW: a link put in its place since it was resolved is not followed
            fd = os.open(real, flags)
        except OSError as e:
            raise ManifestError(f"{path}: {what}, but cannot be opened ({e.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ManifestError(f"{path}: {what}, but it is not a regular file")
            if info.st_size > MAX_ARTIFACT_BYTES:
                raise ManifestError(f"{path}: {info.st_size} bytes, more than any model file ({MAX_ARTIFACT_BYTES})")
            try:
                data = f.read(info.st_size + 1)
            except OSError as e:
                raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ManifestError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {sha256[:12]}…; "
                "the file is corrupt or was replaced"
            )
        return data

    def load_gate(self, fmt: str):
        """The input gate of format ``fmt`` (:class:`edge_infer.gate.InputGate`), checked against
        the manifest's sha256, or ``None`` for a model converted before gates existed.

        Raises:
            ManifestError: the gate file is missing, corrupt or malformed, or has no thresholds
                for ``fmt``.
        """
        from .gate import InputGate, Thresholds

        block = self.data.get("gate")
        if block is None:
            return None
        path = self.model_dir / block["file"]
        try:
            data = self._checked_bytes(block["file"], block["sha256"], "input gate listed in the manifest")
            thresholds = Thresholds.from_dict(block["formats"][fmt]["thresholds"])
        except KeyError as e:
            raise ManifestError(f"{self.model_dir / MANIFEST_FILE}: the gate block lacks {e} for {fmt}; "
                                "refit it with `kneeoa gate`") from None  # fmt: skip
        except (TypeError, ValueError) as e:
            raise ManifestError(f"{self.model_dir / MANIFEST_FILE}: malformed gate block ({e})") from None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                prefix = f"{fmt}."
                return InputGate({k[len(prefix) :]: npz[k] for k in npz.files if k.startswith(prefix)}, thresholds)
        except (OSError, ValueError) as e:
            raise ManifestError(f"{path}: not a usable input gate ({e})") from None

    def load_head(self) -> dict[str, np.ndarray]:
        """The head's dense weights for numpy Grad-CAM, checked against the manifest's sha256."""
        head = self.data["gradcam_head"]
        path = self.model_dir / head["file"]
        data = self._checked_bytes(head["file"], head["sha256"], "Grad-CAM head weights listed in the manifest")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                weights = {k: npz[k].astype(np.float32) for k in npz.files}
        except (OSError, ValueError) as e:
            raise ManifestError(f"{path}: not a readable .npz of head weights ({e})") from None
        c, n = self.feature_shape[2], len(self.classes)
        hidden = weights.get("w_hidden")
        expected = {"w_logits": ((hidden.shape[1] if hidden is not None else c), n)}
        if hidden is not None:
            expected["w_hidden"] = (c, hidden.shape[1])
        for key, shape in expected.items():
            if key not in weights or weights[key].shape != shape:
                got = weights[key].shape if key in weights else "nothing"
                raise ManifestError(f"{path}: {key} expected shape {shape}, got {got}")
        return weights


def load_manifest(model_dir: str | Path) -> Manifest:
    """Read ``model_dir/manifest.json`` and validate it against the schema
    (:mod:`edge_infer.manifest_schema`).

    Raises:
        ManifestError: one line naming the file, and the field and the problem where there is a
            field (missing, not JSON, wrong type or range, inconsistent classes, grades or
            screening, a file name with a directory part, unknown formats).
    """
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_FILE
    data = read_manifest_json(path)
    if data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise ManifestError(
            f"{path}: schema_version {describe(data.get('schema_version'))}, this edge_infer reads "
            f"{list(READABLE_SCHEMA_VERSIONS)}; a newer model needs a newer kneeoa"
        )
    try:
        validate_manifest(data)
    except FieldError as e:
        raise ManifestError(f"{path}: {' '.join(str(e).split())}") from None
    try:
        return _parse(model_dir, data)
    except (KeyError, TypeError, ValueError) as e:  # the schema lets none through; kept as a backstop
        raise ManifestError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None


def read_manifest_json(path: Path) -> dict:
    """The parsed JSON object of a manifest file: a regular file of at most
    :data:`MAX_MANIFEST_BYTES`, UTF-8, JSON, an object, not nested absurdly deep.

    Raises:
        ManifestError: naming the file and the problem.
    """
    if not path.parent.is_dir():
        raise ManifestError(f"{path.parent}: model directory not found")
    if not path.exists():
        raise ManifestError(f"{path}: not found; a model directory needs the manifest that `kneeoa convert` writes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ManifestError(f"{path}: not a regular file")
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB, which no manifest is")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise ManifestError(f"{path}: not a manifest: JSON nested too deeply to read") from None
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise ManifestError(f"{path}: not valid JSON ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: (top level): expected a JSON object, got {describe(data)}")
    return data


def _parse(model_dir: Path, data: dict) -> Manifest:
    classes = list(data["classes"])
    kl = data.get("kl_grades")
    outputs = {role: data["outputs"][role]["name"] for role in OUTPUT_ROLES}
    artifacts = {}
    for name in FORMATS:
        if name in data["artifacts"]:
            a = data["artifacts"][name]
            artifacts[name] = Artifact(FORMATS[name], a["file"], a["sha256"], a)
    unknown = set(data["artifacts"]) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}")
    default = data["default_format"]
    if default not in artifacts:
        raise ValueError(f"default_format {default!r} is not among the artifacts {list(artifacts)}")
    screening = Screening.from_dict(data["screening"], classes) if data.get("screening") else None
    return Manifest(
        model_dir=model_dir,
        name=data.get("name", model_dir.name),
        classes=classes,
        kl_grades=kl,
        screening=screening,
        preprocess=PreprocessSpec.from_dict(data["preprocess"]),
        outputs=outputs,
        feature_shape=tuple(int(v) for v in data["outputs"]["features"]["shape"][-3:]),
        artifacts=artifacts,
        default_format=default,
        data=data,
    )
