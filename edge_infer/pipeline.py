"""Overlap a batch's file work with inference: one background thread runs a function a few items
ahead of the caller, results come back in input order.

Decoding a PNG and resizing it take about 1.3 ms per knee here, against 5–13 ms for the network;
done in line they would add 10–25% to every knee of a batch. The runtimes' invoke releases the
GIL, and so does most of Pillow's decoding: with one inference thread, a batch then runs at about
the speed of the bare invoke (``kneeoa bench``, ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_DEPTH = 2
"""Items prepared ahead: one would do if every file took the same time; two absorbs a slow one."""


def prefetched(
    fn: Callable[[T], R], items: Iterable[T], depth: int = DEFAULT_DEPTH
) -> Iterator[tuple[T, R | Exception]]:
    """Yield ``(item, fn(item))`` in order, computing ``fn`` up to ``depth`` items ahead in one
    background thread. An exception raised by ``fn`` is yielded in place of its result, so one bad
    item never stops the batch; ``KeyboardInterrupt`` and other ``BaseException`` still propagate.

    ``depth=0`` runs ``fn`` in line, in the caller's thread (no thread is started). Items are read
    from ``items`` lazily. Closing the generator early (or an exception in the caller) cancels the
    work not yet started and waits for the one item in progress, so no thread outlives the batch.
    """
    if depth <= 0:
        for item in items:
            yield item, _call(fn, item)
        return
    it = iter(items)
    pending: deque[tuple[T, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-infer-prefetch")
    try:
        for item in it:
            pending.append((item, pool.submit(_call, fn, item)))
            if len(pending) > depth:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _call(fn: Callable[[T], R], item: T) -> R | Exception:
    try:
        return fn(item)
    except Exception as e:  # returned, so it reaches the caller with its item
        return e
