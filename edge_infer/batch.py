"""The one batch engine: inputs in, a stream of typed results out, in input order.

``edge-infer``, :meth:`Classifier.predict_many`, ``kneeoa evaluate`` and ``kneeoa bench`` all run
batches through :func:`run_batch`; they only format what it yields. Per batch:

- the next images are decoded and preprocessed in a background thread while the network runs
  (:func:`edge_infer.pipeline.prefetched`);
- heatmap PNGs, when asked for, are written in a second thread, at most
  :data:`MAX_PENDING_HEATMAPS` waiting;
- one bad input never stops the batch: it becomes a :class:`BatchResult` with an ``error``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputImageError, InputRefusedError, failure_message, readable_name
from .finding import IMAGE_SUFFIXES, find_images
from .heatmaps import HeatmapWriter
from .pipeline import DEFAULT_DEPTH, prefetched

if TYPE_CHECKING:
    from .classifier import Classifier, Prediction

MAX_PENDING_HEATMAPS = 4
"""Overlays waiting to be written; bounds memory when writing is slower than inference."""


@dataclass(frozen=True)
class BatchResult:
    """What became of one input.

    Exactly one of ``prediction``, ``refusal`` and ``error`` is set.

    Attributes:
        source: The input as a person reads it: its path, or ``<array N>`` for an in-memory image.
        prediction: The result, or ``None`` when the input was refused or failed.
        heatmap: Path of the heatmap PNG written for it, if any.
        heatmap_error: Why its heatmap could not be written (the grade stands).
        refusal: Why the input gate refused to grade it (one line a person can act on).
        error: One line naming the input and the problem, when it failed.
        exception: The exception behind ``error`` (for callers that dispatch on its type).
        item: The input exactly as given (a path, an array, or a caller's ``InputImageError``).
    """

    source: str
    prediction: Prediction | None = None
    heatmap: str | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    item: object = field(default=None, compare=False, repr=False)
    refusal: str | None = None
    heatmap_error: str | None = None

    @property
    def ok(self) -> bool:
        """Graded (neither refused nor failed)."""
        return self.prediction is not None

    @property
    def status(self) -> str:
        """``graded``, ``refused`` or ``failed``."""
        return "graded" if self.prediction is not None else "refused" if self.refusal else "failed"

    @property
    def message(self) -> str | None:
        """The one line for stderr when it was not graded."""
        return None if self.ok else f"{self.source}: {self.refusal}" if self.refusal else self.error

    def to_record(self) -> dict:
        """The JSON record ``edge-infer --json`` prints for this input."""
        if self.refusal is not None:
            verdict = getattr(self.exception, "verdict", None)
            return {"input": self.source, "refused": self.refusal, "check": getattr(verdict, "check", None),
                    "gate_scores": verdict.to_record()["scores"] if verdict is not None else {}}  # fmt: skip
        if self.prediction is None:
            return {"input": self.source, "error": self.error}
        record = self.prediction.to_record(self.source, self.heatmap)
        if self.heatmap_error:
            record["heatmap_error"] = self.heatmap_error
        return record


def expand_inputs(inputs: Iterable[Path]) -> Iterator[Path | InputImageError]:
    """Files as given; folders expanded recursively to their image files (by ending, plus DICOM
    files without one, as PACS exports name them), sorted. What a folder search passed over
    (an unreadable sub-folder, a broken or looping link, a FIFO: :func:`edge_infer.finding.find_images`)
    and a folder with no image file yield an :class:`InputImageError` in their places, so they are
    reported, not skipped."""
    for item in inputs:
        if os.path.isdir(item):  # never raises: an unusable path is reported when it is read
            found = find_images(item)
            yield from found or [InputImageError(item, f"folder holds no image files ({' '.join(IMAGE_SUFFIXES)})")]
        else:
            yield item


def source_name(item: object, index: int) -> str:
    """How a result names its input: the path as given, or ``<array N>``. Bytes of a file name
    that are not UTF-8 are written as ``\\xNN`` (:func:`edge_infer.errors.readable_name`), so
    every output can encode the name."""
    if isinstance(item, InputImageError):
        return readable_name(item.path)
    if isinstance(item, (str, Path)):
        return readable_name(str(item))
    return f"<array {index}>"


def run_batch(
    classifier: Classifier,
    items: Iterable,
    heatmap: bool = False,
    heatmaps: HeatmapWriter | None = None,
    prefetch: int = DEFAULT_DEPTH,
) -> Iterator[BatchResult]:
    """Classify ``items`` (paths, ``uint8`` arrays, or a caller's :class:`InputImageError` to pass
    through in its place) and yield one :class:`BatchResult` per item, in input order.

    Args:
        classifier: The loaded classifier.
        items: Read lazily.
        heatmap: Compute each Grad-CAM map (``Prediction.cam``).
        heatmaps: Also write each overlay PNG there (implies ``heatmap``), in a second thread.
        prefetch: Images prepared ahead in a background thread; 0 decodes in line.

    On ``KeyboardInterrupt`` the results already inferred are finished (their heatmaps written)
    and yielded before the interrupt propagates; closing the generator early stops both threads.
    """
    heatmap = heatmap or heatmaps is not None
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-infer-heatmaps") if heatmaps else None
    pending: deque[tuple[BatchResult, Future | None]] = deque()
    try:
        for result in _infer_all(classifier, items, heatmap, prefetch):
            if writer and result.prediction is not None:
                pending.append((result, writer.submit(_write_heatmap, heatmaps, result)))
            else:
                pending.append((result, None))
            while pending and (len(pending) > MAX_PENDING_HEATMAPS or _finished(pending[0])):
                yield _resolve(pending.popleft())
        while pending:
            yield _resolve(pending.popleft())
    except KeyboardInterrupt:  # finish the heatmaps of what was already inferred (a few), hand those over, stop
        if writer:
            writer.shutdown(wait=True)
        while pending:
            yield _resolve(pending.popleft())
        raise
    finally:
        if writer:
            writer.shutdown(wait=True, cancel_futures=True)


def _infer_all(classifier: Classifier, items: Iterable, heatmap: bool, prefetch: int) -> Iterator[BatchResult]:
    """Decode ahead, infer in order; every failure becomes its item's result."""
    with contextlib.closing(prefetched(lambda pair: _prepare(classifier, *pair), enumerate(items), prefetch)) as ready:
        for (index, item), prepared in ready:
            source = source_name(item, index)
            if isinstance(prepared, Exception):
                yield _failed(source, item, prepared)
                continue
            try:
                yield BatchResult(source, classifier.infer(prepared, heatmap, source), item=item)
            except InputRefusedError as e:
                yield BatchResult(source, refusal=" ".join(e.reason.split()), exception=e, item=item)
            except Exception as e:  # one image must never take the batch down
                yield _failed(source, item, e)


def _prepare(classifier: Classifier, index: int, item):
    if isinstance(item, InputImageError):
        raise item
    return classifier.prepare(item, name=source_name(item, index))


def _failed(source: str, item: object, error: BaseException) -> BatchResult:
    return BatchResult(source, error=failure_message(source, error), exception=error, item=item)


def _write_heatmap(heatmaps: HeatmapWriter, result: BatchResult) -> BatchResult:
    try:
        written = heatmaps.write(result.source, result.prediction)
    except Exception as e:  # full or read-only folder, no free name: the grade stands, the heatmap is reported
        reason = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split()) or type(e).__name__
        message = f"cannot write its heatmap into {heatmaps.directory} ({reason})"
        return dataclasses.replace(result, heatmap_error=message, exception=e)
    return dataclasses.replace(result, heatmap=str(written))


def _finished(entry: tuple[BatchResult, Future | None]) -> bool:
    return entry[1] is None or entry[1].done()


def _resolve(entry: tuple[BatchResult, Future | None]) -> BatchResult:
    result, future = entry
    return result if future is None else future.result()  # _write_heatmap never raises
