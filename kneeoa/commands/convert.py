"""``kneeoa convert``: parse the options, convert a trained model to the edge formats."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError
from edge_infer.formats import FORMAT_NAMES
from kneeoa_convert.defaults import DEFAULT_TARGET

from .common import parse_formats, quiet_tensorflow, require_training_stack


@click.command("convert")
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory to write (manifest.json and artifacts).",
)
@click.option(
    "--formats",
    default="onnx-fp32,onnx-int8,tflite-int8",
    show_default=True,
    help=f"Comma-separated, or 'all': {', '.join(FORMAT_NAMES)}.",
)
@click.option(
    "--calibration",
    "calibration_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of real images (class sub-folders) for int8 calibration.",
)
@click.option(
    "--calibration-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Images drawn, class-balanced and shuffled.",
)
@click.option(
    "--verify",
    "verify_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Labelled folder to check every format against Keras [default: the calibration folder].",
)
@click.option(
    "--verify-size",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Images drawn from --verify for the parity check.",
)
@click.option("--default-format", help="Format edge-infer uses by default [default: first int8 ONNX written].")
@click.option("--name", help="Model name in the manifest [default: the run's folder name].")
@click.option(
    "--ship",
    help="Comma-separated formats to keep in --out [default: all that pass]; the others are measured, recorded as dropped, and removed.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=0.97,
    show_default=True,
    help="Reject a format whose top-1 agreement with Keras is lower.",
)
@click.option(
    "--min-gradcam-r",
    type=click.FloatRange(-1, 1),
    default=0.9,
    show_default=True,
    help="Reject a format whose Grad-CAM correlates less with Keras's.",
)
@click.option(
    "--notes",
    "notes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Markdown file recorded in the manifest and shown in the model card (what was tried, known gaps).",
)
@click.option(
    "--gate/--no-gate", default=True, help="Fit the input gate on --calibration and set it on --verify [default: on]."
)
@click.option("--gate-images", type=click.IntRange(min=20), default=1500, show_default=True,
              help="Training images drawn to fit the input gate.")  # fmt: skip
@click.option("--gate-false-refusals", "gate_target", type=click.FloatRange(0.001, 0.2), default=DEFAULT_TARGET,
              show_default=True, help="Share of --verify knees the input gate may refuse, negatives included.")  # fmt: skip
@click.option("--calibrate/--no-calibrate", default=True,
              help="Fit each format's temperature and Refer band on --verify (validation knees) [default: on].")  # fmt: skip
@click.option("--refer-sensitivity", type=click.FloatRange(0.5, 0.999), default=0.90, show_default=True,
              help="Sensitivity the knees called outside the Refer band must reach on --verify.")  # fmt: skip
@click.option("--refer-specificity", type=click.FloatRange(0.5, 0.999), default=0.90, show_default=True,
              help="Specificity they must reach.")  # fmt: skip
def convert_cmd(model_path: Path, out_dir: Path, formats: str, notes_file: Path | None, **options) -> None:
    """Convert MODEL_PATH (.keras from `kneeoa train`) to edge formats with a manifest."""
    names = parse_formats(formats, allow_all=True)
    ship = None
    if options["ship"]:
        ship = tuple(parse_formats(options["ship"], param_hint="--ship"))
        if not set(ship) <= set(names):
            raise click.BadParameter(f"{sorted(set(ship) - set(names))} not among --formats", param_hint="--ship")
    options["ship"] = ship
    kept = ship or names
    if options["default_format"] and options["default_format"] not in kept:
        raise click.BadParameter(
            f"{options['default_format']!r} is not among the formats shipped", param_hint="--default-format"
        )
    require_training_stack("tf2onnx", "onnx")
    quiet_tensorflow()
    from kneeoa_convert.pipeline import ConvertOptions, convert_model

    opts = ConvertOptions(
        formats=tuple(names),
        command=shlex.join(["kneeoa", *sys.argv[1:]]),
        notes=notes_file.read_text() if notes_file else None,
        **options,
    )
    try:
        manifest_path = convert_model(model_path, out_dir, opts)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    click.echo(manifest_path)
