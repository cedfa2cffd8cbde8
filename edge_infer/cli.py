"""``edge-infer``: classify knee X-rays on the device. Thin: parse, call :class:`Classifier`, format.

Each input gives one line (or one JSON object with ``--json``) on stdout. A bad input gives one
line on stderr naming the file and the problem, an ``{"input", "error"}`` record in ``--json``
mode, and the batch goes on; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import InputImageError, KneeOAError, failure_message
from .formats import FORMAT_NAMES
from .preprocess import IMAGE_SUFFIXES, is_image_file
from .output import OUTPUT_SUFFIXES, ResultFile
from .progress import Progress

if TYPE_CHECKING:  # the classifier (and numpy, Pillow, the runtime) load only once a run needs them
    from .classifier import Classifier


def expand_inputs(inputs: tuple[Path, ...]) -> Iterator[Path | InputImageError]:
    """Files as given; folders expanded recursively to their image files (by ending, plus DICOM
    files without one, as PACS exports name them), sorted. A folder with no image file yields an
    :class:`InputImageError` in its place, so it is reported, not skipped."""
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p))
            yield from found or [InputImageError(item, f"folder holds no image files ({' '.join(IMAGE_SUFFIXES)})")]
        else:
            yield item


class HeatmapWriter:
    """Writes ``<stem>_gradcam.png`` overlays, never overwriting one from the same run."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()

    def reserve(self, source: Path) -> Path:
        """The overlay's path for ``source``: unique within the run, claimed in input order."""
        stem, n = source.stem, 1
        name = f"{stem}_gradcam.png"
        while name in self._used:
            n += 1
            name = f"{stem}_{n}_gradcam.png"
        self._used.add(name)
        return self.directory / name

    @staticmethod
    def write(path: Path, prediction) -> Path:
        from PIL import Image

        from .gradcam import overlay

        # zlib level 1: a third of the default's time for files about 20% larger (measured on knees).
        Image.fromarray(overlay(prediction.image, prediction.cam)).save(path, compress_level=1)
        return path


def describe(source: str, record: dict) -> str:
    """One readable line for a result record."""
    probs = "  ".join(f"{k} {v:.2f}" for k, v in record["probabilities"].items())
    parts = [source]
    if record["kl_grade"] is not None:
        parts.append(f"KL {record['kl_grade']}")
    parts.append(record["label"])
    if record["oa_probability"] is not None:
        parts.append(f"P(OA) {record['oa_probability']:.2f}")
    parts.append(probs)
    if record["heatmap"]:
        parts.append(f"heatmap {record['heatmap']}")
    if record.get("notes"):
        parts.append("note: " + "; ".join(record["notes"]))
    return " | ".join(parts)


MAX_PENDING_HEATMAPS = 4
"""Overlays waiting to be written; bounds memory when writing is slower than inference."""


def run_batch(classifier: Classifier, items: list[Path | InputImageError],
              heatmaps: HeatmapWriter | None = None) -> Iterator[tuple[str, dict | str]]:
    """What ``edge-infer`` does per input, in input order: ``(source, record)``, or
    ``(source, error message)`` for an input that failed.

    Images are decoded ahead in a background thread (:meth:`Classifier.predict_many`) and heatmap
    PNGs are written in another, so the network, file reading and file writing overlap.
    """
    from .classifier import Prediction

    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-infer-heatmaps") if heatmaps else None
    pending: deque[tuple[str, Future | dict | str]] = deque()

    def finish(source: str, path: Path, prediction: Prediction) -> dict | str:
        try:
            return prediction.to_record(source, str(heatmaps.write(path, prediction)))
        except OSError as e:
            return f"{source}: cannot write its heatmap {path} ({e.strerror or e})"

    def resolve(source: str, outcome) -> tuple[str, dict | str]:
        try:
            if isinstance(outcome, Future):
                outcome = outcome.result()
            elif isinstance(outcome, Prediction):
                outcome = outcome.to_record(source)
        except Exception as e:  # one file must never take the batch down
            outcome = e
        return source, _outcome(source, outcome)

    def finished(entry) -> bool:
        return not isinstance(entry[1], Future) or entry[1].done()

    try:
        for item, result in classifier.predict_many(items, heatmap=heatmaps is not None):
            source = str(item.path if isinstance(item, InputImageError) else item)
            if writer and isinstance(result, Prediction):
                pending.append((source, writer.submit(finish, source, heatmaps.reserve(Path(source)), result)))
            else:
                pending.append((source, result))
            while pending and (len(pending) > MAX_PENDING_HEATMAPS or finished(pending[0])):
                yield resolve(*pending.popleft())
        while pending:
            yield resolve(*pending.popleft())
    except KeyboardInterrupt:  # finish the heatmaps of what was already inferred (a few), hand those over, stop
        if writer:
            writer.shutdown(wait=True)
        while pending:
            yield resolve(*pending.popleft())
        raise
    finally:
        if writer:
            writer.shutdown(wait=True, cancel_futures=True)


def _outcome(source: str, result) -> dict | str:
    """A record, or the one-line message for a failure."""
    return result if isinstance(result, (dict, str)) else failure_message(source, result)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Model directory with manifest.json [default: the shipped model].")
@click.option("--format", "format_name", type=click.Choice(FORMAT_NAMES), help="Model format [default: the manifest's].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout.")
@click.option("--heatmap-dir", type=click.Path(file_okay=False, path_type=Path), help="Write a Grad-CAM overlay PNG per input here.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), callback=lambda ctx, param, value: _check_output(value),
              help="Also write every result to FILE as it comes: .jsonl or .csv.")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads.")
@click.option("--progress/--no-progress", default=True, help="Show done/total on stderr for batches of 20 or more [default: on].")
@click.option("-v", "--verbose", is_flag=True, help="Show runtime banners and debug logs.")
@click.version_option(package_name="kneeoa")
def main(inputs, model_dir, format_name, as_json, heatmap_dir, output_path, threads, progress, verbose) -> None:
    """Grade knee X-rays (Kellgren–Lawrence 0–4) and screen for osteoarthritis (KL ≥ 2).

    INPUT: image files (PNG, JPEG, TIFF, BMP, DICOM), or folders searched recursively for them.
    Not a diagnostic device: a screening aid for single-knee crops.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("edge_infer").setLevel(logging.DEBUG if verbose else logging.WARNING)
    from .classifier import Classifier

    try:
        heatmaps = HeatmapWriter(heatmap_dir) if heatmap_dir else None
    except OSError as e:
        raise click.ClickException(f"{heatmap_dir}: cannot create the heatmap folder ({e.strerror})") from None
    try:
        classifier = Classifier(model_dir, format=format_name, threads=threads, verbose=verbose)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    try:
        results = ResultFile(output_path, classifier.manifest.classes) if output_path else None
    except OSError as e:
        classifier.close()
        raise click.ClickException(f"{output_path}: cannot write ({e.strerror})") from None
    failed = 0
    items = list(expand_inputs(inputs))
    counter = Progress("edge-infer", enabled=progress)
    try:
        with classifier:
            counter(0, len(items))
            for done, (source, outcome) in enumerate(run_batch(classifier, items, heatmaps), 1):
                if isinstance(outcome, str):
                    failed += 1
                    _report_failure(source, outcome, as_json, counter, results)
                else:
                    if results:
                        results.write(outcome)
                    counter.clear()
                    click.echo(json.dumps(outcome) if as_json else describe(source, outcome))
                counter(done, len(items))
    finally:  # Ctrl-C included: what was written stays written
        counter.close()
        if results:
            results.close()
    sys.exit(1 if failed else 0)


def _check_output(path: Path | None) -> Path | None:
    if path is not None and path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{path}: must end in {' or '.join(OUTPUT_SUFFIXES)}")
    return path


def _report_failure(source, message: str, as_json: bool, counter: Progress, results: ResultFile | None) -> None:
    message = " ".join(message.split())
    counter.note(f"error: {message}")
    record = {"input": str(source), "error": message}
    if results:
        results.write(record)
    if as_json:
        click.echo(json.dumps(record))
