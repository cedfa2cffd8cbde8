"""The project's runtime-only wheel: ``edge_infer`` and ``kneeoa_bench``, nothing of training or
conversion, no model (the kit carries the model beside it).

It is written directly as a zip (PEP 427), not through a build backend: building needs no
network and no particular setuptools, and the same source gives the same bytes (fixed dates,
sorted members), so a kit's checksum of it can be reproduced. The distribution keeps the name
``kneeoa`` with a ``+runtime`` local version, so ``edge-infer --version`` and ``pip`` both name it
for what it is.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import KitError

RUNTIME_PACKAGES = ("edge_infer", "kneeoa_bench")
RUNTIME_EXTRAS = ("tflite", "dicom")
CONSOLE_SCRIPTS = {"edge-infer": "edge_infer.cli:main"}
LOCAL_VERSION = "runtime"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ProjectMetadata:
    """What the runtime wheel's METADATA says, read from the project."""

    name: str
    version: str
    summary: str
    requires_python: str
    license: str
    dependencies: tuple[str, ...]
    extras: dict  # extra name -> requirement strings


def source_root() -> Path:
    """The folder that holds ``edge_infer/`` (a checkout, or site-packages)."""
    import edge_infer

    return Path(edge_infer.__file__).resolve().parent.parent


def project_metadata(root: Path | None = None) -> ProjectMetadata:
    """The project's name, version and runtime requirements, from ``pyproject.toml`` in a checkout
    or else from the installed ``kneeoa`` distribution."""
    root = root or source_root()
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and importlib.util.find_spec("tomllib") is not None:  # Python 3.11+
        import tomllib

        p = tomllib.loads(pyproject.read_text())["project"]
        extras = {x: tuple(p.get("optional-dependencies", {}).get(x, ())) for x in RUNTIME_EXTRAS}
        return ProjectMetadata(
            p["name"],
            p["version"],
            p["description"],
            p["requires-python"],
            p["license"],
            tuple(p["dependencies"]),
            extras,
        )
    from importlib import metadata

    try:
        m = metadata.metadata("kneeoa")
    except metadata.PackageNotFoundError:
        raise KitError(f"{root}: neither a checkout (no pyproject.toml) nor an installed kneeoa") from None
    deps, extras = [], {x: [] for x in RUNTIME_EXTRAS}
    for req in m.get_all("Requires-Dist") or []:
        found = re.search(r";\s*extra\s*==\s*['\"]([\w-]+)['\"]\s*$", req)
        if not found:
            deps.append(req)
        elif found.group(1) in extras:
            extras[found.group(1)].append(req[: found.start()].strip())
    return ProjectMetadata(
        m["Name"], m["Version"], m["Summary"] or "", m["Requires-Python"] or "", m["License-Expression"] or m["License"] or "",
        tuple(deps), {k: tuple(v) for k, v in extras.items()},
    )  # fmt: skip


def runtime_requirements(meta: ProjectMetadata, extras: tuple[str, ...]) -> list[str]:
    """The requirement strings a device needs: the base dependencies and those of ``extras``."""
    return [*meta.dependencies, *(r for x in extras for r in meta.extras[x])]


def _metadata_text(meta: ProjectMetadata, version: str) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {meta.name}",
        f"Version: {version}",
        f"Summary: {meta.summary} Runtime-only build for offline screening kits.",
        f"License: {meta.license}",
        f"Requires-Python: {meta.requires_python}",
        *(f"Requires-Dist: {r}" for r in meta.dependencies),
    ]
    for extra, reqs in meta.extras.items():
        lines.append(f"Provides-Extra: {extra}")
        for r in reqs:
            req, _, marker = r.partition(";")
            condition = f"({marker.strip()}) and extra == '{extra}'" if marker.strip() else f"extra == '{extra}'"
            lines.append(f"Requires-Dist: {req.strip()}; {condition}")
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_runtime_wheel(out_dir: Path, root: Path | None = None) -> Path:
    """Write ``kneeoa-<version>+runtime-py3-none-any.whl`` into ``out_dir`` and return its path.

    Raises:
        KitError: a runtime package is missing from ``root``.
    """
    root = root or source_root()
    meta = project_metadata(root)
    version = f"{meta.version}+{LOCAL_VERSION}"
    files: dict[str, bytes] = {}
    for package in RUNTIME_PACKAGES:
        if not (root / package / "__init__.py").is_file():
            raise KitError(f"{root / package}: runtime package missing; cannot build the runtime wheel")
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    dist_info = f"{meta.name}-{version}.dist-info"
    licence = root / "LICENSE"
    if licence.is_file():
        files[f"{dist_info}/licenses/LICENSE"] = licence.read_bytes()
    files[f"{dist_info}/METADATA"] = _metadata_text(meta, version).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: kneeoa_kit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = "".join(f"{name} = {target}\n" for name, target in CONSOLE_SCRIPTS.items())
    files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    files[f"{dist_info}/top_level.txt"] = "".join(f"{p}\n" for p in RUNTIME_PACKAGES).encode()
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{meta.name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel
