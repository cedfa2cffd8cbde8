"""``edge-infer``: classify knee X-rays on the device. Thin: parse, call :class:`Classifier`, format.

Each input gives one line (or one JSON object with ``--json``) on stdout. A bad input gives one
line on stderr naming the file and the problem, an ``{"input", "error"}`` record in ``--json``
mode, and the batch goes on; an input the gate refuses gets the same treatment with an
``{"input", "refused", ...}`` record. The exit status is 1 if any input failed or was refused.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from pathlib import Path

import click

from .errors import KneeOAError, OutputError
from .formats import FORMAT_NAMES, MAX_THREADS
from .output import OUTPUT_SUFFIXES, ResultFile, terminal_safe
from .progress import Progress


def describe(source: str, record: dict) -> str:
    """One readable line for a result record (control characters in names shown escaped)."""
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
    if record.get("heatmap_error"):
        parts.append("heatmap not written: " + record["heatmap_error"])
    return terminal_safe(" | ".join(parts))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Model directory with manifest.json [default: the shipped model].",
)
@click.option(
    "--format", "format_name", type=click.Choice(FORMAT_NAMES), help="Model format [default: the manifest's]."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout.")
@click.option(
    "--heatmap-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a Grad-CAM overlay PNG per input here.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda ctx, param, value: _check_output(value),
    help="Also write every result to FILE as it comes: .jsonl or .csv.",
)
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), help=f"Inference threads (1 to {MAX_THREADS}).")
@click.option(
    "--progress/--no-progress", default=True, help="Show done/total on stderr for batches of 20 or more [default: on]."
)
@click.option(
    "--no-gate",
    is_flag=True,
    help="Grade even what the input gate refuses (research only); each record says it was forced.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show runtime banners and debug logs.")
@click.version_option(package_name="kneeoa")
def main(
    inputs, model_dir, format_name, as_json, heatmap_dir, output_path, threads, progress, no_gate, verbose
) -> None:
    """Grade knee X-rays (Kellgren–Lawrence 0–4) and screen for osteoarthritis (KL ≥ 2).

    INPUT: image files (PNG, JPEG, TIFF, BMP, DICOM), or folders searched recursively for them.
    Not a diagnostic device: a screening aid for single-knee crops.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("edge_infer").setLevel(logging.DEBUG if verbose else logging.WARNING)
    from .batch import HeatmapWriter, expand_inputs  # numpy, Pillow and the runtime load only for a run
    from .classifier import Classifier

    try:
        heatmaps = HeatmapWriter(heatmap_dir) if heatmap_dir else None
    except OSError as e:
        raise click.ClickException(f"{heatmap_dir}: cannot create the heatmap folder ({e.strerror})") from None
    try:
        gate = "report" if no_gate else "enforce"
        classifier = Classifier(model_dir, format=format_name, threads=threads, verbose=verbose, gate=gate)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    try:
        results = ResultFile(output_path, classifier.manifest.classes) if output_path else None
    except OutputError as e:
        classifier.close()
        raise click.ClickException(str(e)) from None
    except OSError as e:
        classifier.close()
        raise click.ClickException(f"{output_path}: cannot write ({e.strerror})") from None
    failed = _run(classifier, list(expand_inputs(inputs)), heatmaps, results, as_json, progress)
    sys.exit(1 if failed else 0)


def _run(classifier, items: list, heatmaps, results: ResultFile | None, as_json: bool, progress: bool) -> int:
    """Classify ``items``, printing each result and appending it to ``results``; returns how many
    inputs were not fully served (failed, refused, heatmap not written, record not written)."""
    from .batch import run_batch

    failed = file_lost = 0
    counter = Progress("edge-infer", enabled=progress)
    out = _Stdout(keep_going=results is not None)
    try:
        with classifier:
            counter(0, len(items))
            for done, result in enumerate(run_batch(classifier, items, heatmaps=heatmaps), 1):
                record = result.to_record()
                if results is not None and not _save(results, record, counter, out):
                    results, file_lost, out.keep_going = None, 1, False
                failed += not result.ok or bool(result.heatmap_error)
                if not result.ok:
                    counter.note(terminal_safe(f"{'refused' if result.refusal else 'error'}: {result.message}"))
                elif result.heatmap_error:
                    counter.note(terminal_safe(f"heatmap not written: {result.source}: {result.heatmap_error}"))
                if as_json or result.ok:
                    counter.clear()
                    out.echo(json.dumps(record) if as_json else describe(result.source, record))
                counter(done, len(items))
    finally:  # Ctrl-C included: what was written stays written
        counter.close()
        if results:
            results.close()
    return failed + file_lost + out.broken


def _save(results: ResultFile, record: dict, counter: Progress, out: _Stdout) -> bool:
    """Append ``record``; on failure say so, close the file and return ``False``. The batch goes
    on when standard output still takes the results; with both gone it stops (exit 1)."""
    try:
        results.write(record)
        return True
    except OutputError as e:
        results.close()
        if out.broken:
            counter.note(terminal_safe(f"error: {e}; standard output is gone too: stopping"))
            sys.exit(1)
        counter.note(terminal_safe(f"error: {e}; the results that follow are on standard output only"))
        return False


class _Stdout:
    """Standard output that fails cleanly: a full disk or a closed pipe gives one line on stderr;
    the batch goes on only when ``--output`` still keeps the results."""

    def __init__(self, keep_going: bool):
        self.keep_going = keep_going
        self.broken = 0

    def echo(self, line: str) -> None:
        if self.broken:
            return
        try:
            if sys.stdout is None:  # closed at start (`>&-`), or a process started without one
                raise OSError(errno.EBADF, "closed")
            click.echo(line)
            sys.stdout.flush()
        except (OSError, ValueError) as e:  # ValueError: a closed file object
            self.broken = 1
            _silence_stdout()
            click.echo(f"edge-infer: cannot write to standard output ({getattr(e, 'strerror', None) or e})", err=True)
            if not self.keep_going:
                sys.exit(1)


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush cannot fail again."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _check_output(path: Path | None) -> Path | None:
    if path is not None and path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{path}: must end in {' or '.join(OUTPUT_SUFFIXES)}")
    return path


if __name__ == "__main__":  # python -m edge_infer.cli
    main(prog_name="edge-infer")
