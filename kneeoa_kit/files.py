"""The kit's own files: the model copy, the scripts and README from templates, ``SHA256SUMS``, and
the zip archive."""

from __future__ import annotations

import json
import shutil
import zipfile
from importlib import resources
from pathlib import Path

from .errors import KitError
from .verify import MODEL_DIR, SUMS, sha256_of

TEMPLATES = ("install.sh", "install.ps1", "screen.sh", "screen.ps1", "bench.sh", "bench.ps1", "README.txt")
EXECUTABLE = (".sh", ".py")
STORED = (".whl", ".onnx", ".tflite", ".npz")  # already compressed, or not worth the time


def copy_model(model_dir: Path, formats: list[str], dest: Path) -> dict:
    """Copy the manifest's files for ``formats`` (plus the Grad-CAM head, the gate and the model
    card) into ``dest/model`` and write a manifest that lists only those formats.

    Returns:
        The kit's manifest as written.
    """
    from edge_infer.manifest import MANIFEST_FILE, load_manifest

    manifest = load_manifest(model_dir)
    data = json.loads(json.dumps(manifest.data))
    data["artifacts"] = {f: data["artifacts"][f] for f in formats}
    if data["default_format"] not in formats:
        data["default_format"] = formats[0]
    files = [manifest.artifact_path(f).name for f in formats]  # checks each file's sha256 on the way
    files.append(data["gradcam_head"]["file"])
    if data.get("gate"):
        files.append(data["gate"]["file"])
    if (model_dir / "MODEL_CARD.md").is_file():
        files.append("MODEL_CARD.md")
    out = dest / MODEL_DIR
    out.mkdir(parents=True)
    for name in files:
        shutil.copyfile(model_dir / name, out / name)
    (out / MANIFEST_FILE).write_text(json.dumps(data, indent=2) + "\n")
    return data


def render(name: str, values: dict[str, str]) -> str:
    """A template from ``kneeoa_kit/templates`` with every ``@@KEY@@`` filled in."""
    text = resources.files("kneeoa_kit").joinpath("templates", name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise KitError(f"kneeoa_kit/templates/{name}: a placeholder was left unfilled")
    return text


def write_templates(kit: Path, values: dict[str, str]) -> None:
    """The scripts, README.txt and verify.py (this package's verifier, copied byte for byte)."""
    for name in TEMPLATES:
        newline = "\r\n" if name.endswith((".ps1", ".txt")) else "\n"
        (kit / name).write_text(render(name, values), encoding="utf-8", newline=newline)
    verifier = resources.files("kneeoa_kit").joinpath("verify.py").read_bytes()
    (kit / "verify.py").write_bytes(verifier)
    for path in kit.iterdir():
        if path.suffix in EXECUTABLE:
            path.chmod(0o755)


def write_sums(kit: Path) -> Path:
    """``SHA256SUMS`` over every file in the kit (``sha256sum -c`` reads it too)."""
    files = sorted(p for p in kit.rglob("*") if p != kit / SUMS and (p.is_symlink() or p.is_file()))
    links = [p for p in files if p.is_symlink()]
    if links:
        raise KitError(f"{links[0]}: a symbolic link in the kit; a kit holds plain files only")
    lines = [f"{sha256_of(p)}  {p.relative_to(kit).as_posix()}" for p in files]
    path = kit / SUMS
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_zip(kit: Path, archive: Path) -> Path:
    """Zip ``kit`` under one top-level folder named as the archive; plain files only, with their
    permission bits, in sorted order."""
    top = archive.stem
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(kit.rglob("*")):
            if not path.is_file():
                continue
            info = zipfile.ZipInfo(f"{top}/{path.relative_to(kit).as_posix()}", (1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix in STORED else zipfile.ZIP_DEFLATED
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return archive
