"""Walking a dataset's folders lazily, for ``kneeoa prepare``: the same images, in the same order,
with the same refusals as :func:`edge_infer.finding.find_images`, without ever holding the list.

``find_images`` returns every path of a folder tree at once (about 0.6 KiB per image with what
``prepare`` kept beside it). Here only the folders on the way down are open, and each one's
entries are kept as a sorted array of encoded names (a few bytes each; sorted, so two runs over
the same files see the same order on any filesystem).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_infer.errors import InputImageError
from edge_infer.finding import IMAGE_SUFFIXES, entry_kind, is_image_file


def iter_images(folder: Path) -> Iterator[Path | InputImageError]:
    """The image files under ``folder``, recursively, sorted by path, each folder read when the
    walk reaches it; an :class:`InputImageError` in the place of a folder that cannot be listed, a
    broken or looping link, or a FIFO, device or socket named like an image."""
    yield from _walk(Path(folder), set(), frozenset())


def _sorted_names(folder: Path) -> np.ndarray:
    with os.scandir(folder) as entries:
        names = [os.fsencode(e.name) for e in entries]
    return np.sort(np.asarray(names, dtype=bytes)) if names else np.empty(0, dtype=bytes)


def _walk(folder: Path, seen: set, ancestors: frozenset) -> Iterator[Path | InputImageError]:
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield InputImageError(folder, "link loops back to a folder it is inside; skipped")
            return
        if key in seen:  # another way to a folder already searched: its images are listed once
            return
        seen.add(key)
        names = _sorted_names(folder)
    except OSError as e:
        yield InputImageError(folder, f"cannot list this folder ({e.strerror or e}); skipped")
        return
    for raw in names:
        path = folder / os.fsdecode(raw)
        kind = entry_kind(path)
        if kind == "folder":
            yield from _walk(path, seen, ancestors | {key})
        elif kind == "file":
            if is_image_file(path):
                yield path
        elif path.suffix.lower() in IMAGE_SUFFIXES or not path.suffix:
            yield InputImageError(path, f"{kind}; skipped")
