"""``kneeoa evaluate``: score a labelled folder on the edge runtime, as shipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError
from edge_infer.formats import FORMAT_NAMES

from .common import model_option


@click.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@click.option(
    "--format", "format_name", type=click.Choice(FORMAT_NAMES), help="Model format [default: the manifest's]."
)
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write evaluation.json, predictions.csv, confusion_matrix.png and roc.png here.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the figures as JSON (without per-image predictions) instead of the table.",
)
@click.option("--ood", "ood_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of images that are not knee crops (sub-folders: categories): report the gate's refusals.")  # fmt: skip
@click.option("--no-gate", is_flag=True, help="Score every knee, including those the input gate would refuse.")
def evaluate_cmd(data_dir: Path, model_dir, format_name, threads, out_dir, as_json, ood_dir, no_gate) -> None:
    """Score DATA_DIR (one sub-folder per class: 0..4 for KL grades) on the edge runtime, as shipped.

    Unreadable images are reported on stderr and listed under "failed"; the exit status is then 1.
    """
    from edge_infer.progress import Progress
    from kneeoa_bench.evaluate import evaluate, report, write_outputs

    progress = Progress("evaluate")

    def on_result(done: int, total: int, path: Path, error: str | None) -> None:
        if error:
            progress.note(f"error: {error}")
        progress(done, total)

    try:
        gate = "report" if no_gate else "enforce"
        result = evaluate(data_dir, model_dir, format_name, threads, on_result=on_result, ood_dir=ood_dir, gate=gate)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    finally:
        progress.close()
    if out_dir:
        try:
            written = write_outputs(result, out_dir)
        except OSError as e:
            raise click.ClickException(f"{out_dir}: cannot write the evaluation files ({e.strerror or e})") from None
        for path in written:
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=1))
    else:
        click.echo(report(result))
    sys.exit(1 if result["failed"] else 0)
