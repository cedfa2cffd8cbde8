"""``--heatmap-dir``: Grad-CAM overlay PNGs written so that no record can point at another knee's
heatmap.

- **Never overwritten.** A name is taken by exclusive creation (a hard link of a finished
  temporary file, which fails if the name exists), so neither a second run into the same folder,
  at the same time or later, nor a pre-placed file or symlink can be replaced or followed; a
  taken name gets a number (``knee_2_gradcam.png``).
- **Never half-written.** The PNG is written in full to a hidden temporary file in the same
  folder and only then linked under its name: a kill leaves a complete PNG or none (at most a
  stray ``.*.part`` file). On file systems without hard links (FAT on a USB stick), the name is
  created exclusively and written in place: still never overwritten, but not atomic.
- **Portable names.** Characters other than ASCII letters, digits, ``.``, ``-`` and ``_`` become ``_``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .classifier import Prediction

MAX_NUMBERED = 100_000
"""Names tried per stem (``knee_gradcam.png``, ``knee_2_gradcam.png``, …) before giving up."""

_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
"""errno of a file system without hard links (FAT, exFAT, some network shares)."""
_NO_HARD_LINKS_WINDOWS = {1, 50}
"""winerror of CreateHardLinkW on FAT: ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED (errno EINVAL)."""
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def heatmap_stem(source: str) -> str:
    """The portable stem of an input's heatmap name: ``<array 3>`` gives ``_array_3_``."""
    return re.sub(r"[^\w.-]", "_", Path(source).stem, flags=re.ASCII) or "image"


class HeatmapWriter:
    """Writes ``<stem>_gradcam.png`` overlays into ``directory`` (created if missing)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, source: str, prediction: Prediction) -> Path:
        """Write ``prediction``'s overlay under a name no other file has; returns its path.

        Raises:
            OSError: the folder is not writable, full, or has no free name for this stem.
        """
        return self.write_png(source, render_png(prediction))

    def write_png(self, source: str, png: bytes) -> Path:
        """Store finished PNG bytes under the first free name for ``source`` (see the module)."""
        tmp = str(self.directory / f".{secrets.token_hex(8)}.part")
        fd = os.open(tmp, _CREATE_NEW, 0o644)  # mode under the user's umask, as for --output
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            return self._claim(heatmap_stem(source), lambda path: _link_or_create(tmp, path, png))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _claim(self, stem: str, create) -> Path:
        for n in range(1, MAX_NUMBERED + 1):
            path = self.directory / (f"{stem}_gradcam.png" if n == 1 else f"{stem}_{n}_gradcam.png")
            try:
                create(path)
            except FileExistsError:
                continue
            return path
        raise OSError(errno.EEXIST, f"no free name left for {stem}_N_gradcam.png")


def _link_or_create(tmp: str, path: Path, png: bytes) -> None:
    """Give ``tmp`` the name ``path`` if it is free; raises ``FileExistsError`` if taken."""
    try:
        os.link(tmp, path)  # fails if the name exists, even as a dangling symlink
        return
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS and getattr(e, "winerror", None) not in _NO_HARD_LINKS_WINDOWS:
            raise
    fd = os.open(path, _CREATE_NEW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def render_png(prediction: Prediction) -> bytes:
    """The overlay of ``prediction`` (its image and Grad-CAM map) as PNG bytes."""
    from PIL import Image

    from .overlay import heatmap_figure

    buffer = io.BytesIO()
    # zlib level 1: a third of the default's time for files about 20% larger (measured on knees).
    Image.fromarray(heatmap_figure(prediction.image, prediction.cam)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
