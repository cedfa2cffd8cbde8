"""``kneeoa gate``: fit (or refit) the input gate of a model directory, on the edge runtime."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_infer.errors import KneeOAError
from kneeoa_convert.defaults import DEFAULT_TARGET


@click.command("gate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--train", "train_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Training images (class sub-folders): the knees the gate learns.")  # fmt: skip
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Validation knees (class sub-folders): the thresholds are set on them.")  # fmt: skip
@click.option("--images", "n_fit", type=click.IntRange(min=50), default=1500, show_default=True,
              help="Training knees drawn (class-balanced) to fit the gate.")  # fmt: skip
@click.option("--false-refusals", "target", type=click.FloatRange(0.001, 0.2), default=DEFAULT_TARGET, show_default=True,
              help="Share of validation knees the gate may refuse, negatives stored in them included.")  # fmt: skip
def gate_cmd(model_dir: Path, train_dir: Path, val_dir: Path, n_fit: int, target: float) -> None:
    """Fit the input gate of MODEL_DIR (kneeoa convert does this itself) and record it in its manifest."""
    from kneeoa_convert.gate import fit_gate, record_gate

    try:
        block = fit_gate(model_dir, train_dir, val_dir, n_fit=n_fit, target=target)
        record_gate(model_dir, block)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    for fmt, entry in block["formats"].items():
        v = entry["validation"]
        click.echo(f"{fmt}: {v['refused']} of {v['n']} validation knees refused ({v['false_refusal_rate']:.1%}); "
                   f"thresholds {json.dumps(entry['thresholds'])}")  # fmt: skip
