"""The schema of ``manifest.json``: each field the device reads, its type and range, and the rules
that tie fields together.

A manifest decides the answer as much as the model file does: which probability is which KL
grade, where "Osteoarthritis" begins, how pixels become input. So every such field is checked
before anything runs, and a manifest that breaks a rule is refused with one line naming the field
(``screening.threshold: expected a finite number strictly between 0 and 1, got nan``).

:data:`MANIFEST_SCHEMA` is the structure (types, ranges, shapes of strings); :func:`validate_manifest`
checks it, then the cross-field rules (:data:`RULES`): KL grades match the classes and come in
order, the screening group is the top grades, output shapes match the classes, each artifact's
engine is its format's, no file is listed twice. Fields that only describe (training history,
notes, parity figures) are checked for type only where they are read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .calibration import MAX_TEMPERATURE
from .formats import FORMATS
from .gate import ORIENTATIONS
from .json_fields import (
    AnyObject,
    Arr,
    FieldError,
    Int,
    MapOf,
    Nullable,
    Num,
    Obj,
    OneOf,
    Str,
    Text,
    check_depth,
    describe,
)
from .preprocess import INTENSITY_MODES

__all__ = ["MANIFEST_SCHEMA", "RULES", "FieldError", "describe", "validate_manifest"]

MAX_DEPTH = 24
"""Deepest nesting accepted anywhere in a manifest (``convert`` writes 7 levels)."""
FILE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""An artifact's ``file``: a plain file name in the model folder; no directory part, so no
absolute path and no ``..``."""
SHA256 = r"[0-9a-f]{64}"
KL_MAX_GRADE = 4


FILE = Str(FILE_NAME, "a file name in the model folder (letters, digits, '.', '_', '-'; no directory part)")
HASH = Str(SHA256, "a sha256: 64 lower-case hexadecimal digits")
FINITE = Num()
PROBABILITY = Num(0.0, 1.0)
POSITIVE_DIM = Int(1, 1_000_000)
BATCH_DIM = Nullable(Int(-1, 1_000_000))
FORMAT = OneOf(tuple(FORMATS))
CLASS_NAME = Str(r"[^\x00-\x1f\x7f]{1,64}", "a class name of 1 to 64 printable characters")

CALIBRATION = Obj(
    required={"temperature": Num(1 / MAX_TEMPERATURE, MAX_TEMPERATURE)},
    optional={"method": Text(), "refer_band": Nullable(Arr(PROBABILITY, 2, 2, what="a [low, high] pair"))},
)
"""A format's calibration (:mod:`edge_infer.calibration`); its figures are descriptive."""

SELF_TEST_ENTRY = Obj(
    optional={"calibration_sha256": HASH},
    required={
        "artifact_sha256": HASH,
        "input": Obj(required={"seed": Int(0, 2**31 - 1), "size": POSITIVE_DIM, "grid": Int(2, 64), "sha256": HASH}),
        "probabilities": MapOf(CLASS_NAME, PROBABILITY, min_len=2),
        "top_class": CLASS_NAME,
        "kl_grade": Nullable(Int(0, KL_MAX_GRADE)),
        "oa_probability": Nullable(PROBABILITY),
        "label": Str(),
    },
)

MANIFEST_SCHEMA = Obj(
    required={
        "schema_version": Int(1, 1_000),  # the readable versions are checked by the manifest reader
        "classes": Arr(CLASS_NAME, min_len=2, max_len=1000, unique=True),
        "preprocess": Obj(
            required={"size": Int(16, 4096)},
            optional={
                "channels": OneOf((1, 3)),
                "value_range": Arr(FINITE, 2, 2, what="a [low, high] pair"),
                "intensity": Nullable(
                    Obj(
                        required={"method": OneOf(INTENSITY_MODES)},
                        optional={"low": Num(0, 100), "high": Num(0, 100), "description": Text()},
                    )
                ),
                "layout": OneOf(("NHWC",)),
                "dtype": OneOf(("float32",)),
                "color": Text(),
                "resize": Text(),
            },
        ),
        "outputs": Obj(
            required={
                "probabilities": Obj(
                    required={"name": Str()},
                    optional={"shape": Arr(BATCH_DIM, 2, 2), "activation": OneOf(("softmax",))},
                ),
                "features": Obj(required={"name": Str(), "shape": Arr(BATCH_DIM, 4, 4)}, optional={"layer": Text()}),
            }
        ),
        "gradcam_head": Obj(
            required={"file": FILE, "sha256": HASH}, optional={"architecture": Text(), "method": Text()}
        ),
        "artifacts": MapOf(
            FORMAT,
            Obj(
                required={"file": FILE, "sha256": HASH},
                optional={
                    "bytes": Int(1, 2**40),
                    "engine": OneOf(("onnxruntime", "litert")),
                    "quantization": AnyObject,
                    "parity_vs_keras": AnyObject,
                    "convert_seconds": Nullable(FINITE),
                    "calibration": CALIBRATION,
                },
            ),
            min_len=1,
        ),
        "default_format": FORMAT,
    },
    optional={
        "name": Str(),
        "created": Text(),
        "intended_use": Text(),
        "notes": Nullable(Text()),
        "kl_grades": Nullable(Arr(Int(0, KL_MAX_GRADE), min_len=2, max_len=KL_MAX_GRADE + 1)),
        "screening": Nullable(
            Obj(
                required={
                    "positive_classes": Arr(CLASS_NAME, min_len=1, unique=True),
                    "threshold": Num(0.0, 1.0, open_lo=True, open_hi=True),
                    "positive_label": Str(),
                    "negative_label": Str(),
                },
                optional={"rule": Text()},
            )
        ),
        "gate": Nullable(
            Obj(
                required={
                    "file": FILE,
                    "sha256": HASH,
                    "formats": MapOf(
                        FORMAT,
                        Obj(
                            required={
                                "thresholds": Obj(
                                    required=dict.fromkeys(("distance", "orientation", "polarity"), FINITE)
                                )
                            },
                            optional={"validation": AnyObject},
                        ),
                    ),
                },
                optional={"orientations": Arr(Str(), len(ORIENTATIONS), len(ORIENTATIONS))},
            )
        ),
        "self_test": Obj(
            required={
                "generator": OneOf(("sha256-smooth-v1",)),
                "tolerance": Num(0.0, 0.1, open_lo=True),
                "contract": MapOf(Str(r"[a-z_]+", "a manifest section name"), HASH, min_len=1),
                "formats": MapOf(FORMAT, SELF_TEST_ENTRY, min_len=1),
            },
            optional={"method": Text(), "command": Text()},
        ),
        "source_model": Obj(optional={"file": Str(), "sha256": HASH, "bytes": Int(0, 2**40)}),
        "conversion": AnyObject,
        "compute": AnyObject,
        "training": AnyObject,
        "agreement_between_formats": AnyObject,
        "dropped_formats": AnyObject,
    },
)


def _kl_grades_match_classes(d: dict) -> None:
    grades = d.get("kl_grades")
    if grades is None:
        return
    classes = d["classes"]
    if len(grades) != len(classes):
        raise FieldError("kl_grades", f"expected one grade per class ({len(classes)}), got {len(grades)}")
    for i in range(1, len(grades)):
        if grades[i] <= grades[i - 1]:
            raise FieldError(f"kl_grades[{i}]", f"grades must rise with the output index, got {grades}")
    for i, (name, grade) in enumerate(zip(classes, grades, strict=True)):
        if name != f"KL{grade}":
            raise FieldError(f"classes[{i}]", f"output {i} is KL grade {grade} (kl_grades), so it must be named 'KL{grade}', got {name!r}")  # fmt: skip


def _screening_is_a_group_of_classes(d: dict) -> None:
    s = d.get("screening")
    if s is None:
        return
    classes, positive = d["classes"], s["positive_classes"]
    unknown = [c for c in positive if c not in classes]
    if unknown:
        raise FieldError("screening.positive_classes", f"{unknown} are not classes of the model {classes}")
    if len(positive) >= len(classes):
        raise FieldError("screening.positive_classes", "must be some, not all, of the classes")
    if s["positive_label"] == s["negative_label"]:
        raise FieldError(
            "screening.negative_label", f"must differ from positive_label, got {s['negative_label']!r} for both"
        )
    grades = d.get("kl_grades")
    if grades is None:
        return
    lowest = min(g for c, g in zip(classes, grades, strict=True) if c in positive)
    top = sorted(c for c, g in zip(classes, grades, strict=True) if g >= lowest)
    if sorted(positive) != top:
        raise FieldError(
            "screening.positive_classes", f"must be every grade from KL {lowest} up ({top}), got {positive}"
        )
    rule = re.fullmatch(r"KL >= (\d)", s.get("rule", ""))
    if rule and int(rule[1]) != lowest:
        raise FieldError("screening.rule", f"says {s['rule']!r}, but positive_classes start at KL {lowest}")


def _preprocess_ranges_are_ordered(d: dict) -> None:
    p = d["preprocess"]
    lo, hi = p.get("value_range", (-1.0, 1.0))
    if not lo < hi:
        raise FieldError("preprocess.value_range", f"expected low < high, got [{lo!r}, {hi!r}]")
    intensity = p.get("intensity") or {}
    if intensity.get("method") == "percentile":
        low, high = intensity.get("low", 0.5), intensity.get("high", 99.5)
        if not low < high:
            raise FieldError("preprocess.intensity", f"expected low < high percentiles, got {low!r} and {high!r}")
    if d["schema_version"] == 1 and intensity.get("method", "stored") != "stored":
        raise FieldError(
            "preprocess.intensity", "schema_version 1 cannot carry an intensity contract other than 'stored'"
        )


def _outputs_match_classes(d: dict) -> None:
    out = d["outputs"]
    n = len(d["classes"])
    shape = out["probabilities"].get("shape")
    if shape is not None and shape[1] not in (None, -1, n):
        raise FieldError("outputs.probabilities.shape", f"expected [null, {n}] for {n} classes, got {shape}")
    for i, dim in enumerate(out["features"]["shape"][1:], start=1):
        POSITIVE_DIM(dim, f"outputs.features.shape[{i}]")
    if out["probabilities"]["name"] == out["features"]["name"]:
        raise FieldError("outputs.features.name", "must differ from outputs.probabilities.name")


def _refer_bands_hold_the_threshold(d: dict) -> None:
    for name, art in d["artifacts"].items():
        band = (art.get("calibration") or {}).get("refer_band")
        if band is None:
            continue
        where = f"artifacts.{name}.calibration.refer_band"
        if band[0] > band[1]:
            raise FieldError(where, f"low {band[0]} is above high {band[1]}")
        screening = d.get("screening")
        if screening is None:
            raise FieldError(where, "a refer band needs a screening grouping")
        if not band[0] <= screening["threshold"] <= band[1]:
            raise FieldError(where, f"{band} does not hold the screening threshold {screening['threshold']}")


def _artifacts_are_distinct(d: dict) -> None:
    owners: dict[str, str] = {"manifest.json": "the manifest", d["gradcam_head"]["file"]: "gradcam_head"}
    if d.get("gate"):
        owners.setdefault(d["gate"]["file"], "gate")
    for name, art in d["artifacts"].items():
        where = f"artifacts.{name}"
        if "engine" in art and art["engine"] != FORMATS[name].engine.value:
            raise FieldError(f"{where}.engine", f"{name} runs on {FORMATS[name].engine.value}, got {art['engine']!r}")
        if art["file"] in owners:
            raise FieldError(f"{where}.file", f"{art['file']!r} is also {owners[art['file']]}'s file")
        owners[art["file"]] = where
    if d["default_format"] not in d["artifacts"]:
        raise FieldError("default_format", f"{d['default_format']!r} is not among the artifacts {list(d['artifacts'])}")


RULES: tuple[Callable[[dict], None], ...] = (
    _kl_grades_match_classes,
    _screening_is_a_group_of_classes,
    _preprocess_ranges_are_ordered,
    _outputs_match_classes,
    _artifacts_are_distinct,
    _refer_bands_hold_the_threshold,
)


def validate_manifest(data: Any) -> None:
    """Check a parsed ``manifest.json`` against :data:`MANIFEST_SCHEMA` and :data:`RULES`.

    Raises:
        FieldError: the first field that breaks the schema, with its dotted path.
    """
    if not isinstance(data, dict):
        raise FieldError("(top level)", f"expected an object, got {describe(data)}")
    check_depth(data, MAX_DEPTH)
    MANIFEST_SCHEMA(data, "")
    for rule in RULES:
        rule(data)
