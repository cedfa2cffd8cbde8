"""``kneeoa kit build``: assemble a portable offline screening kit.

A kit folder holds ``wheels/`` (the runtime wheel and every dependency for each target),
``model/`` (the chosen formats and their manifest), ``verify.py``, the install, screen and bench
scripts for sh and PowerShell, ``README.txt``, ``kit.json`` and ``SHA256SUMS``. Built in a
temporary folder and moved into place only once it verifies, so a failed build leaves nothing
that looks like a kit.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KitError
from .files import copy_model, write_sums, write_templates, write_zip
from .runtime_wheel import build_runtime_wheel, project_metadata, runtime_requirements
from .targets import Target
from .verify import fingerprint, verify
from .wheelhouse import default_cache_dir, fetch_wheels, min_glibc

log = logging.getLogger(__name__)
KIT_FORMAT = 1


@dataclass(frozen=True)
class KitOptions:
    """What ``kneeoa kit build`` was asked for.

    Attributes:
        model_dir: Model directory with ``manifest.json``.
        targets: Platforms and Python versions to carry wheels for.
        out: The kit folder to create (must not exist, or be empty), or a ``.zip`` file.
        formats: Formats to ship, registry names; ``None`` for every one in the model directory.
        dicom: Carry the ``dicom`` extra (pydicom and its JPEG decoders).
        wheelhouse: Take wheels only from this local folder, not from the package index.
        cache_dir: Where downloads are kept between builds.
        command: The command line, recorded in ``kit.json`` and README.txt.
    """

    model_dir: Path
    targets: tuple[Target, ...]
    out: Path
    formats: tuple[str, ...] | None = None
    dicom: bool = True
    wheelhouse: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    command: str = ""


@dataclass(frozen=True)
class KitResult:
    """A built kit: where it is, its fingerprint (sha256 of SHA256SUMS) and its sizes in bytes."""

    path: Path
    fingerprint: str
    total_bytes: int
    target_bytes: dict  # target key -> bytes of the wheels that target installs
    formats: tuple[str, ...]


def extras_for(formats: list[str], dicom: bool) -> tuple[str, ...]:
    """The runtime extras a kit needs: ``tflite`` for a LiteRT format, ``dicom`` when asked."""
    from edge_infer.formats import FORMATS, Engine

    litert = any(FORMATS[f].engine is Engine.LITERT for f in formats)
    return tuple(x for x, wanted in (("tflite", litert), ("dicom", dicom)) if wanted)


def _prepare_out(out: Path) -> None:
    if out.suffix.lower() == ".zip":
        if out.exists():
            raise KitError(f"{out}: exists; choose a new file name")
        out.parent.mkdir(parents=True, exist_ok=True)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KitError(f"{out}: exists and is not an empty folder; choose a new one")


def _choose_formats(opts: KitOptions) -> list[str]:
    from edge_infer.formats import FORMAT_NAMES
    from edge_infer.manifest import load_manifest

    available = list(load_manifest(opts.model_dir).artifacts)
    if opts.formats is None:
        return available
    absent = [f for f in opts.formats if f not in available]
    if absent:
        raise KitError(f"{opts.model_dir}: no {', '.join(absent)} here; it has {', '.join(available)}")
    return [f for f in FORMAT_NAMES if f in opts.formats]


def _kit_json(opts: KitOptions, manifest: dict, wheel: Path, targets: list[dict], extras: tuple[str, ...]) -> dict:
    default = manifest["default_format"]
    parity = manifest["artifacts"][default].get("parity_vs_keras", {})
    figures = {
        k: parity[k]
        for k in ("n", "accuracy", "quadratic_weighted_kappa", "screening_auc", "sensitivity", "specificity")
        if k in parity
    }
    return {
        "kit_format": KIT_FORMAT,
        "kneeoa_version": wheel.name.split("-")[1],
        "runtime_wheel": wheel.name,
        "extras": list(extras),
        "targets": targets,
        "model": {
            "name": manifest.get("name"),
            "formats": list(manifest["artifacts"]),
            "default_format": default,
            "screening_threshold": (manifest.get("screening") or {}).get("threshold"),
            "figures": figures | {"of": f"format {default}, {parity.get('source', 'its verification images')}"},
            "intended_use": manifest.get("intended_use"),
            "data_citation": (manifest.get("training") or {}).get("data_citation"),
        },
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_command": opts.command,
        "built_with": {"python": platform.python_version(), "platform": platform.platform()},
        "source": "local wheelhouse" if opts.wheelhouse else "package index",
    }  # fmt: skip


def _readme_values(kit_name: str, info: dict) -> dict[str, str]:
    figures = info["model"]["figures"]
    metrics = ", ".join(
        f"{label} {figures[k]:.3f}"
        for k, label in (("accuracy", "accuracy"), ("quadratic_weighted_kappa", "kappa"), ("screening_auc", "AUC (KL>=2)"),
                         ("sensitivity", "sensitivity"), ("specificity", "specificity")) if k in figures
    )  # fmt: skip
    pythons = sorted({t["python"] for t in info["targets"]})
    version = info["kneeoa_version"]
    return {
        "VERSION": version,
        "MODEL_NAME": str(info["model"]["name"]),
        "METRICS_SET": f"{figures.get('n', 'its')} validation knees",
        "DEFAULT_FORMAT": info["model"]["default_format"],
        "METRICS": metrics or "no figures recorded in its manifest",
        "TARGETS": ", ".join(f"{t['platform']} (Python {t['python']})" for t in info["targets"]),
        "FORMATS": ", ".join(info["model"]["formats"]),
        "PYTHONS": " or ".join(pythons),
        "KIT_NAME": kit_name,
        "DICOM_NOTE": ", DICOM" if "dicom" in info["extras"] else "",
        "THRESHOLD": str(info["model"]["screening_threshold"]),
        "CITATION": info["model"]["data_citation"] or "(no data citation in the model's manifest)",
        "BUILT": info["built"],
        "COMMAND": info["build_command"] or "(not recorded)",
        "REQUIREMENT": f"kneeoa[{','.join(info['extras'])}]=={version}" if info["extras"] else f"kneeoa=={version}",
    }


def _fetch_targets(opts: KitOptions, requirements: list[str], wheels_dir: Path, scratch: Path, progress) -> list[dict]:
    out = []
    for target in opts.targets:
        progress(f"wheels for {target.platform.name}, Python {target.python}")
        wheels = fetch_wheels(target, requirements, scratch / target.key, opts.wheelhouse, opts.cache_dir)
        for w in wheels:
            if not (wheels_dir / w.name).exists():
                shutil.copyfile(w, wheels_dir / w.name)
        out.append({"platform": target.platform.name, "python": target.python, "shell": target.platform.shell,
                    "for": target.platform.note, "min_glibc": min_glibc(wheels), "wheels": [w.name for w in wheels]})  # fmt: skip
    return out


def build_kit(opts: KitOptions, progress=lambda message: None) -> KitResult:
    """Build a kit as ``opts`` asks and return where it is.

    Raises:
        KitError: the output exists, a format is not in the model, no wheels fit a target, or the
            finished kit fails its own verification.
        edge_infer.errors.ManifestError: the model directory is not valid.
    """
    _prepare_out(opts.out)
    formats = _choose_formats(opts)
    extras = extras_for(formats, opts.dicom)
    kit_name = opts.out.stem if opts.out.suffix.lower() == ".zip" else opts.out.name
    with tempfile.TemporaryDirectory(prefix="kneeoa-kit-") as tmp:
        kit = Path(tmp) / kit_name
        (kit / "wheels").mkdir(parents=True)
        progress(f"model: {', '.join(formats)} from {opts.model_dir}")
        manifest = copy_model(opts.model_dir, formats, kit)
        wheel = build_runtime_wheel(kit / "wheels")
        requirements = runtime_requirements(project_metadata(), extras)
        targets = _fetch_targets(opts, requirements, kit / "wheels", Path(tmp) / "downloads", progress)
        for t in targets:
            t["wheels"].insert(0, wheel.name)
        info = _kit_json(opts, manifest, wheel, targets, extras)
        (kit / "kit.json").write_text(json.dumps(info, indent=1) + "\n")
        write_templates(kit, _readme_values(kit_name, info))
        write_sums(kit)
        problems = verify(kit)
        if problems:
            raise KitError(f"the kit just built does not verify: {problems[0]}")
        sizes = {
            t["platform"] + "-cp" + t["python"].replace(".", ""): sum(
                (kit / "wheels" / w).stat().st_size for w in t["wheels"]
            )
            for t in targets
        }
        total = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
        digest = fingerprint(kit)
        if opts.out.suffix.lower() == ".zip":
            write_zip(kit, opts.out)
            shutil.copyfile(kit / "verify.py", opts.out.with_name(f"{kit_name}-verify.py"))
        else:
            opts.out.mkdir(parents=True, exist_ok=True)
            for item in kit.iterdir():
                shutil.move(str(item), opts.out / item.name)
    return KitResult(opts.out, digest, total, sizes, tuple(formats))
