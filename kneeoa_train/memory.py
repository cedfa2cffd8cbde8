"""Keeping a long data pipeline's resident memory from creeping up.

glibc gives threads their own malloc arenas (up to 8 per core) and rarely returns their freed
pages; tf.data's reader, interleave and map threads allocate and free records all the time, so a
process's resident size grows with the length of the run (so with the dataset, for one epoch)
rather than with what it holds. Capping the arenas before TensorFlow starts its threads is the
remedy glibc itself offers (``M_ARENA_MAX``, also read from the ``MALLOC_ARENA_MAX`` variable);
``benchmarks/INPUT_PIPELINE.md`` has the measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` in glibc's ``malloc.h``."""
DEFAULT_ARENAS = 2


def cap_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (once per process; a ``MALLOC_ARENA_MAX`` the user set wins).

    Returns:
        Whether the cap is in force (``False`` off glibc, e.g. macOS or musl, where nothing changes).
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    if not libc.mallopt(M_ARENA_MAX, arenas):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)  # processes started from here inherit the cap
    log.debug("malloc arenas capped at %d", arenas)
    return True
