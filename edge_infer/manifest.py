"""The model directory's ``manifest.json``: reading, validation and artifact checksums.

A model directory holds ``manifest.json``, one file per format and ``head.npz`` (the head's dense
weights for Grad-CAM; loaded with ``allow_pickle=False``). The manifest is the contract between
``convert`` and the device: classes, screening grouping, preprocessing, output names and shapes,
and each artifact's format, file and sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ManifestError
from .formats import FORMATS, ModelFormat
from .preprocess import PreprocessSpec
from .screening import Screening

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 2
"""Written by ``kneeoa convert``. 2 added ``preprocess.intensity``: a device whose edge_infer reads
only 1 must refuse such a model rather than feed it unstretched pixels."""
READABLE_SCHEMA_VERSIONS = (1, 2)
"""1: no intensity block (grey levels as stored)."""
OUTPUT_ROLES = ("probabilities", "features")


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

    def artifact_path(self, fmt: str, verify_checksum: bool = True) -> Path:
        """Path of a format's file, after checking it exists and matches its sha256.

        Raises:
            ManifestError: when the format is not in this model directory, its file is missing,
                or its checksum differs from the manifest's.
        """
        if fmt not in self.artifacts:
            raise ManifestError(
                f"{self.model_dir}: no {fmt!r} model here; available: {', '.join(self.artifacts) or 'none'}"
            )
        art = self.artifacts[fmt]
        return self._checked_file(art.file, art.sha256, f"listed in {MANIFEST_FILE} as {fmt}", verify_checksum)

    def _checked_file(self, name: str, sha256: str, what: str, verify_checksum: bool = True) -> Path:
        path = self.model_dir / name
        if not path.is_file():
            raise ManifestError(f"{path}: {what} but missing; rebuild it with `kneeoa convert`")
        if verify_checksum:
            try:
                actual = sha256_file(path)
            except OSError as e:
                raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
            if actual != sha256:
                raise ManifestError(
                    f"{path}: sha256 {actual[:12]}… does not match the manifest's {sha256[:12]}…; "
                    "the file is corrupt or was replaced"
                )
        return path

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
        try:
            path = self._checked_file(block["file"], block["sha256"], "input gate listed in the manifest")
            thresholds = Thresholds.from_dict(block["formats"][fmt]["thresholds"])
        except KeyError as e:
            raise ManifestError(f"{self.model_dir / MANIFEST_FILE}: the gate block lacks {e} for {fmt}; "
                                "refit it with `kneeoa gate`") from None  # fmt: skip
        except (TypeError, ValueError) as e:
            raise ManifestError(f"{self.model_dir / MANIFEST_FILE}: malformed gate block ({e})") from None
        try:
            with np.load(path, allow_pickle=False) as npz:
                prefix = f"{fmt}."
                return InputGate({k[len(prefix) :]: npz[k] for k in npz.files if k.startswith(prefix)}, thresholds)
        except (OSError, ValueError) as e:
            raise ManifestError(f"{path}: not a usable input gate ({e})") from None

    def load_head(self) -> dict[str, np.ndarray]:
        """The head's dense weights for numpy Grad-CAM, checked against the manifest's sha256."""
        head = self.data["gradcam_head"]
        path = self._checked_file(head["file"], head["sha256"], "Grad-CAM head weights listed in the manifest")
        try:
            with np.load(path, allow_pickle=False) as npz:
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
    """Read and validate ``model_dir/manifest.json``.

    Raises:
        ManifestError: naming the file and the problem (missing, not JSON, missing keys,
            unknown formats, inconsistent classes).
    """
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_FILE
    if not model_dir.is_dir():
        raise ManifestError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise ManifestError(f"{path}: not found; a model directory needs the manifest that `kneeoa convert` writes")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return _parse(model_dir, data)
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None


def _require(block: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in block]
    if missing:
        raise KeyError(f"{where} lacks {', '.join(missing)}")


def _parse(model_dir: Path, data: dict) -> Manifest:
    if data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(
            f"schema_version {data.get('schema_version')!r}, this edge_infer reads {list(READABLE_SCHEMA_VERSIONS)}; "
            "a newer model needs a newer kneeoa"
        )
    if data["schema_version"] == 1 and (data["preprocess"].get("intensity") or {}).get("method", "stored") != "stored":
        raise ValueError(
            "schema_version 1 cannot carry an intensity contract other than 'stored'; rebuild with kneeoa convert"
        )
    classes = list(data["classes"])
    kl = data.get("kl_grades")
    if kl is not None and len(kl) != len(classes):
        raise ValueError("kl_grades and classes differ in length")
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
    _require(data["gradcam_head"], ("file", "sha256"), "gradcam_head")
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
