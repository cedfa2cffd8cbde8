"""``kneeoa kit verify``: the kit's own ``verify.py`` checks, then the full manifest validation
that only ``edge_infer`` can do (a stdlib-only verifier checks the manifest's shape and sums)."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from .errors import KitError
from .verify import MODEL_DIR, KitProblem, extract, verify


def check_kit(
    path: Path, extract_to: Path | None = None, this_machine: bool = False, venv: Path | None = None
) -> tuple[Path, list[str]]:
    """``(kit folder, problems)``: every problem one line naming its file; none when intact.

    Raises:
        KitError: ``path`` is an archive and no folder to unpack it into was given, or it cannot be
            unpacked safely.
    """
    from edge_infer.errors import ManifestError
    from edge_infer.manifest import load_manifest

    kit = Path(path)
    if kit.is_file():
        if extract_to is None:
            raise KitError(f"{kit}: an archive; pass --extract DIR to unpack it safely and check it")
        try:
            kit = extract(kit, extract_to)
        except (KitProblem, zipfile.BadZipFile, tarfile.TarError, OSError) as e:
            raise KitError(str(e)) from None
    problems = verify(kit, this_machine, venv)
    if not problems:
        try:
            load_manifest(kit / MODEL_DIR)
        except ManifestError as e:
            problems.append(str(e))
    return kit, problems
