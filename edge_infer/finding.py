"""Finding the image files in a folder a user named, and saying what was passed over.

A folder given to ``edge-infer`` is searched recursively. What cannot be searched or read is not
silently dropped: an unreadable sub-folder, a broken or looping link, and a FIFO, device or socket
that carries an image name each come back as a :class:`~edge_infer.errors.InputImageError`, so
the batch reports it on its own line and exits non-zero.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .dicom import looks_like_dicom
from .errors import InputImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
"""File endings picked up when a folder is given; a file named explicitly is always tried."""


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, recursively (:func:`is_image_file`), sorted; what could
    not be searched is left out (:func:`find_images` reports it)."""
    return [p for p in find_images(folder) if isinstance(p, Path)]


def find_images(folder: Path) -> list[Path | InputImageError]:
    """The image files under ``folder``, recursively, sorted by path, and in their places an
    :class:`InputImageError` for each sub-folder that cannot be listed, each link that is broken
    or loops back to a folder it is inside, and each FIFO, device or socket named like an image.
    A folder reached twice (``latest -> 2024``) is searched once, without complaint."""
    found: list[tuple[str, Path | InputImageError]] = []
    seen: set[tuple[int, int]] = set()
    _search(Path(folder), found, seen, frozenset())
    return [item for _, item in sorted(found, key=lambda pair: Path(pair[0]).parts)]


def _search(folder: Path, found: list, seen: set, ancestors: frozenset) -> None:
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            found.append((str(folder), InputImageError(folder, "link loops back to a folder it is inside; skipped")))
            return
        if key in seen:  # another way to a folder already searched: its images are listed once
            return
        seen.add(key)
        with os.scandir(folder) as entries:
            names = sorted(entries, key=lambda e: e.name)
    except OSError as e:
        found.append((str(folder), InputImageError(folder, f"cannot list this folder ({e.strerror or e}); skipped")))
        return
    for entry in names:
        path = Path(entry.path)
        kind = entry_kind(entry)
        if kind == "folder":
            _search(path, found, seen, ancestors | {key})
        elif kind == "file":
            if is_image_file(path):
                found.append((str(path), path))
        elif _named_like_image(path):
            found.append((str(path), InputImageError(path, f"{kind}; skipped")))


def entry_kind(entry: os.DirEntry | Path) -> str:
    """``folder``, ``file``, or why the entry (a directory entry or a path) is not read."""
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError as e:
        if entry.is_symlink():
            return (
                "broken link (its target is missing)"
                if isinstance(e, FileNotFoundError)
                else f"unusable link ({e.strerror})"
            )
        return f"cannot be examined ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "not a regular file (a FIFO, device or socket)"


def _named_like_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or not path.suffix


def is_image_file(p: Path) -> bool:
    """Whether a regular file found in a folder is taken as an image: an image ending, or no
    ending and a DICOM preamble (PACS exports name files ``IM0001``)."""
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if p.suffix:
        return False
    try:
        with open(p, "rb") as f:
            return looks_like_dicom(p, f.read(132))
    except OSError:
        return True  # let the reader report why it cannot be read
