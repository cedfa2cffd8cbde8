"""Check a kneeoa screening kit: standard library only, so it runs on a bare Python before anything
is installed. This very file is copied into every kit as ``verify.py``; ``kneeoa kit verify`` runs
the same code.

    python3 verify.py [KIT]                  every checksum, no extra or missing file, the model manifest
    python3 verify.py KIT.zip --extract DIR  unpack an archive safely first, then check what was unpacked
    python3 verify.py --this-machine [KIT]   also: the kit has wheels for this machine's platform and Python
    python3 verify.py --installed VENV [KIT] also: the installed files in VENV match the kit's wheels

Exit status 0 when everything checks out; 1 with one line per problem, each naming the file.
Archives are unpacked member by member: absolute paths, ``..``, drive letters, links, devices and
members over the size limit are refused before anything is written.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import os
import platform
import stat
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

SUMS = "SHA256SUMS"
KIT_JSON = "kit.json"
MODEL_DIR = "model"
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB: the largest wheel (onnxruntime, LiteRT) is under 100 MB
MAX_TOTAL_BYTES = 4 << 30
MANIFEST_KEYS = ("schema_version", "classes", "preprocess", "outputs", "gradcam_head", "artifacts", "default_format")
READABLE_SCHEMAS = (1, 2)


class KitProblem(Exception):
    """The kit (or an archive of it) is not as built; the message names the file."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path an archive member may be written to, or :class:`KitProblem`."""
    if not name or "\\" in name or "\x00" in name:
        raise KitProblem(f"{name!r}: refused: backslash, NUL or empty name in the archive")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise KitProblem(f"{name}: refused: absolute path in the archive")
    if ".." in path.parts:
        raise KitProblem(f"{name}: refused: '..' in an archive path (path traversal)")
    return path


def _members(archive: Path):
    """``(name, kind, declared size, opener)`` of every member; kind is ``file``, ``dir`` or what else it is."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "dir" if info.is_dir() else "symlink" if stat.S_ISLNK(mode) else "file"
                if kind == "file" and mode and not stat.S_ISREG(mode):
                    kind = "special file"
                yield info.filename, kind, info.file_size, lambda info=info: zf.open(info)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for m in tf:
                kind = (
                    "file"
                    if m.isreg()
                    else "dir"
                    if m.isdir()
                    else "symlink"
                    if m.issym()
                    else "hard link"
                    if m.islnk()
                    else "special file"
                )
                yield m.name, kind, m.size, lambda m=m: tf.extractfile(m)
    else:
        raise KitProblem(f"{archive}: not a zip or tar archive")


def extract(
    archive: str | Path, dest: str | Path, max_member: int = MAX_MEMBER_BYTES, max_total: int = MAX_TOTAL_BYTES
) -> Path:
    """Unpack ``archive`` into the empty (or new) folder ``dest`` refusing anything unsafe, and
    return the kit folder inside it (the single top-level folder, else ``dest``).

    Sizes are enforced on the bytes actually written, not only on what the archive declares.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise KitProblem(f"{dest}: not empty; unpack into a new folder")
    total, tops = 0, set()
    for name, kind, size, opener in _members(archive):
        rel = safe_member_path(name)
        if kind not in ("file", "dir"):
            raise KitProblem(f"{name}: refused: a {kind} in the archive (a kit holds plain files only)")
        if size > max_member:
            raise KitProblem(f"{name}: refused: {size} bytes, over the {max_member}-byte limit for one file")
        target = dest.joinpath(*rel.parts)
        if rel.parts:
            tops.add(rel.parts[0])
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with opener() as src, open(target, "xb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                written += len(block)
                total += len(block)
                if written > max_member or total > max_total:
                    raise KitProblem(
                        f"{name}: refused: unpacks to more than the size limit ({max_member} bytes a file, {max_total} in all)"
                    )
                out.write(block)
    only = dest / next(iter(tops)) if len(tops) == 1 else None
    return only if only is not None and only.is_dir() else dest


def read_sums(kit: Path) -> dict[str, str]:
    """Relative path → sha256 from the kit's ``SHA256SUMS`` (``sha256sum`` format)."""
    path = kit / SUMS
    if not path.is_file():
        raise KitProblem(f"{path}: missing; this folder is not a kit, or its checksum list was removed")
    sums = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KitProblem(f"{path}: line {n} is not '<sha256>  <file>'")
        safe_member_path(name.removeprefix("*"))
        sums[name.removeprefix("*")] = digest
    return sums


def kit_files(kit: Path) -> tuple[set[str], list[str]]:
    """Every plain file under ``kit`` (relative, ``/``-separated), and a problem for anything else."""
    files, problems = set(), []
    for root, dirs, names in os.walk(kit):
        for name in dirs + names:
            path = Path(root, name)
            rel = path.relative_to(kit).as_posix()
            if path.is_symlink():
                problems.append(f"{path}: a symbolic link; a kit holds plain files only")
            elif name in names and not path.is_file():
                problems.append(f"{path}: not a plain file")
            elif name in names:
                files.add(rel)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return files, problems


def check_files(kit: Path) -> list[str]:
    """One line per file that differs from ``SHA256SUMS``: changed, missing or extra."""
    sums = read_sums(kit)
    present, problems = kit_files(kit)
    present.discard(SUMS)
    for rel in sorted(sums.keys() - present):
        problems.append(f"{kit / rel}: missing (listed in {SUMS})")
    for rel in sorted(present - sums.keys()):
        problems.append(f"{kit / rel}: extra file, not in {SUMS}")
    for rel in sorted(sums.keys() & present):
        if sha256_of(kit / rel) != sums[rel]:
            problems.append(f"{kit / rel}: changed (sha256 differs from {SUMS})")
    return problems


def check_manifest(kit: Path) -> list[str]:
    """The model's ``manifest.json`` parses, has what a device needs, and its own checksums hold."""
    path = kit / MODEL_DIR / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"{path}: not a readable JSON manifest ({e})"]
    missing = [k for k in MANIFEST_KEYS if k not in data]
    if missing:
        return [f"{path}: lacks {', '.join(missing)}"]
    if data["schema_version"] not in READABLE_SCHEMAS:
        return [f"{path}: schema_version {data['schema_version']!r}, expected one of {list(READABLE_SCHEMAS)}"]
    if data["default_format"] not in data["artifacts"]:
        return [f"{path}: default_format {data['default_format']!r} is not among its artifacts"]
    listed = [(f"artifact {k}", a) for k, a in data["artifacts"].items()] + [("gradcam_head", data["gradcam_head"])]
    if data.get("gate"):
        listed.append(("gate", data["gate"]))
    problems = []
    for what, entry in listed:
        try:
            rel = safe_member_path(entry["file"])
            expected = entry["sha256"]
        except (KeyError, TypeError, KitProblem) as e:
            problems.append(f"{path}: {what}: malformed entry ({e})")
            continue
        file = kit / MODEL_DIR / Path(*rel.parts)
        if not file.is_file():
            problems.append(f"{file}: {what} listed in the manifest but missing")
        elif sha256_of(file) != expected:
            problems.append(f"{file}: {what}: sha256 differs from the manifest's")
    return problems


def this_platform() -> str:
    """This machine as a kit names platforms: ``linux-aarch64``, ``linux-x86_64``, ``win-amd64``, …"""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("win"):
        return "win-amd64" if machine == "x86_64" else f"win-{machine}"
    return f"{sys.platform.rstrip('0123456789')}-{machine}"


def check_machine(kit: Path) -> list[str]:
    """The kit carries wheels for this platform and Python, and this C library is new enough."""
    info = json.loads((kit / KIT_JSON).read_text(encoding="utf-8"))
    here, py = this_platform(), f"{sys.version_info[0]}.{sys.version_info[1]}"
    fits = [t for t in info["targets"] if t["platform"] == here and t["python"] == py]
    offered = ", ".join(f"{t['platform']} with Python {t['python']}" for t in info["targets"])
    if not fits:
        return [
            f"{kit / KIT_JSON}: no wheels in this kit fit this machine ({here}, Python {py}); it has: {offered}. "
            f"Run the install with one of those Python versions (PYTHON=python3.X sh install.sh), "
            f"or ask for a kit built with --platform {here} --python {py}"
        ]
    need = fits[0].get("min_glibc")
    libc, version = platform.libc_ver()
    if need and libc == "glibc" and _version(version) < _version(need):
        return [f"{kit / KIT_JSON}: the wheels for {here} need glibc {need} or newer; this machine has {version} "
                "(Raspberry Pi OS 11 'bullseye' or newer, Debian 11, Ubuntu 20.04 have it)"]  # fmt: skip
    return []


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def check_installed(kit: Path, venv: Path) -> list[str]:
    """Every file that the kit's wheels installed into ``venv`` still matches its wheel's RECORD."""
    info = json.loads((kit / KIT_JSON).read_text(encoding="utf-8"))
    wanted = {_norm(w.split("-")[0]) for t in info["targets"] for w in t["wheels"]}
    found_records = venv.glob("lib*/**/site-packages/*.dist-info/RECORD")  # lib/ (and lib64 -> lib), Windows Lib/
    unique = {p.resolve(): p for p in found_records if _norm(p.parent.name.split("-")[0]) in wanted}
    records = sorted(unique)
    found = {_norm(p.parent.name.split("-")[0]) for p in records}
    if "kneeoa" not in found:
        return [f"{venv}: no kneeoa installed here; run install.sh (or install.ps1) first"]
    problems = []
    for record in records:
        site = record.parent.parent
        with open(record, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row]
        for name, digest, *_ in rows:
            if not digest.startswith("sha256="):
                continue  # RECORD itself, and files pip wrote (bytecode, INSTALLER)
            path = (site / name).resolve()
            if not path.is_file():
                problems.append(f"{path}: installed by {record.parent.name} but missing")
                continue
            actual = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
            if actual != digest.removeprefix("sha256="):
                problems.append(f"{path}: changed since {record.parent.name} installed it")
    return problems


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def verify(kit: str | Path, this_machine: bool = False, venv: str | Path | None = None) -> list[str]:
    """Every problem with the kit folder ``kit``, one line each naming the file; empty when intact."""
    kit = Path(kit)
    if not kit.is_dir():
        return [f"{kit}: not a folder"]
    try:
        problems = check_files(kit)
    except (KitProblem, OSError, UnicodeDecodeError) as e:
        return [str(e)]
    problems += check_manifest(kit)
    if problems:
        return problems
    if this_machine:
        problems += check_machine(kit)
    if venv is not None:
        problems += check_installed(kit, Path(venv))
    return problems


def fingerprint(kit: str | Path) -> str:
    """The sha256 of ``SHA256SUMS``: one value that stands for the whole kit, to compare with the
    one the kit's sender gives separately (an intact kit with a different fingerprint is another kit)."""
    return sha256_of(Path(kit) / SUMS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify.py", description="Check a kneeoa screening kit (standard library only)."
    )
    parser.add_argument(
        "kit",
        nargs="?",
        default=str(Path(__file__).resolve().parent),
        help="kit folder, or a .zip/.tar archive of one [default: the folder of this file]",
    )
    parser.add_argument(
        "--extract", metavar="DIR", help="for an archive: unpack it safely into DIR (new or empty) and check that"
    )
    parser.add_argument(
        "--this-machine", action="store_true", help="also check that the kit has wheels for this machine"
    )
    parser.add_argument(
        "--installed", metavar="VENV", help="also check the files installed into this virtual environment"
    )
    args = parser.parse_args(argv)
    kit = Path(args.kit)
    try:
        if kit.is_file():
            if not args.extract:
                print(f"{kit}: an archive; pass --extract DIR to unpack it safely and check it", file=sys.stderr)
                return 2
            kit = extract(kit, args.extract)
        problems = verify(kit, args.this_machine, args.installed)
    except (KitProblem, OSError, zipfile.BadZipFile, tarfile.TarError, ValueError, KeyError) as e:
        problems = [str(e) if isinstance(e, KitProblem) else f"{kit}: {type(e).__name__}: {e}"]
    for line in problems:
        print(f"FAILED: {line}", file=sys.stderr)
    if problems:
        return 1
    checked = len(read_sums(kit))
    extra = " and this machine" if args.this_machine else ""
    extra += f" and the install in {args.installed}" if args.installed else ""
    print(f"OK: {kit}: {checked} files match {SUMS}, the model manifest checks out{extra}")
    print(f"kit fingerprint (sha256 of {SUMS}): {fingerprint(kit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
