"""Keep native libraries' banners (XNNPACK's INFO line, converter logs) off the user's terminal.

They write to file descriptors 1 and 2 from C++, below Python's ``sys.stdout``, so only a
descriptor-level redirect stops them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_REDIRECT_LOCK = threading.RLock()
"""File descriptors 1 and 2 belong to the whole process: two threads redirecting at once (two
Classifiers opened together) would each save the other's redirect and leave stderr pointing at
``/dev/null`` for good. One redirect at a time."""


@contextlib.contextmanager
def native_output_to(path: str = os.devnull, stdout: bool = False, stderr: bool = True) -> Iterator[None]:
    """Point fd 1 and/or 2 at ``path`` for the duration of the block (Python streams are flushed).
    Blocks of several threads run one after another (:data:`_REDIRECT_LOCK`)."""
    with _REDIRECT_LOCK:
        yield from _redirected(path, stdout, stderr)


def _redirected(path: str, stdout: bool, stderr: bool) -> Iterator[None]:
    fds = ([1] if stdout else []) + ([2] if stderr else [])
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        yield
        return
    try:
        for fd in fds:
            saved.append((fd, os.dup(fd)))
            os.dup2(target, fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(target)
