"""``kneeoa``: the workstation command. Thin: parse options, call library functions, report."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click

from edge_infer.formats import FORMAT_NAMES
from edge_infer.errors import KneeOAError
from train.config import CLASS_WEIGHT_MODES, HEAD_LAYERS, INTENSITIES, LOSSES, PRECISIONS, SELECT_METRICS


def _quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Knee-OA screening: train and convert models on a workstation."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


@main.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--val", "val_dir", type=click.Path(exists=True, file_okay=False), help="Validation folder [default: DATA_DIR/val when DATA_DIR has train/ and val/].")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory (outside the repository); rerun with the same --out to resume.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="JSON file of defaults; flags override it.")
@click.option("--weights", help="imagenet, none (from scratch) or a backbone weights file [default: none].")
@click.option("--input-size", type=click.IntRange(min=75), help="Square input side, ≥ 75 [default: 75].")
@click.option("--head-layer", type=click.Choice(HEAD_LAYERS), help="InceptionV3 block the head sits on [default: mixed5].")
@click.option("--hidden-units", type=click.IntRange(min=0), help="Dense+ReLU width in the head, 0 for none [default: 0].")
@click.option("--dropout", type=float, help="[default: 0.3]")
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 20]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 32]")
@click.option("--learning-rate", type=float, help="Peak Adam learning rate, cosine decay [default: 1e-3].")
@click.option("--label-smoothing", type=float, help="[default: 0]")
@click.option("--loss", type=click.Choice(LOSSES), help="crossentropy, or sord (soft ordinal labels for KL grades) [default: crossentropy].")
@click.option("--sord-alpha", type=float, help="SORD target sharpness: mass ∝ exp(-alpha·Δgrade²) [default: 2].")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False), help="Start from a trained .keras model of the same architecture (any input size).")
@click.option("--jit/--no-jit", "jit_compile", default=None, help="XLA-compile the training step [default: off].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="auto: bfloat16 mixed precision on CPUs with AMX, float32 elsewhere [default: auto].")
@click.option("--intensity", type=click.Choice(INTENSITIES), help="percentile: stretch each image's 0.5-99.5 percentile range (v2 contract); stored: as decoded [default: percentile].")
@click.option("--class-weight", type=click.Choice(CLASS_WEIGHT_MODES), help="[default: sqrt]")
@click.option("--rotation-deg", type=float, help="Augmentation: max rotation [default: 10].")
@click.option("--zoom", type=float, help="Augmentation: zoom fraction [default: 0.15].")
@click.option("--shift", type=float, help="Augmentation: width/height shift fraction [default: 0.08].")
@click.option("--flip/--no-flip", default=None, help="Augmentation: horizontal flip [default: on].")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Cap steps per epoch (smoke runs).")
@click.option("--select-metric", type=click.Choice(SELECT_METRICS), help="Validation figure that picks the best checkpoint [default: quadratic_weighted_kappa].")
@click.option("--seed", type=int, help="[default: 0]")
def train_cmd(data_dir: Path, val_dir, out_dir, config_file, **options) -> None:
    """Train InceptionV3 on DATA_DIR (one sub-folder per class; 0..4 = KL grades)."""
    train_dir = data_dir
    if val_dir is None:
        if (data_dir / "train").is_dir() and (data_dir / "val").is_dir():
            train_dir, val_dir = data_dir / "train", data_dir / "val"
        else:
            raise click.UsageError("give --val DIR, or a DATA_DIR holding train/ and val/")
    _quiet_tensorflow()
    from train.config import TrainConfig
    from train.trainer import TrainSetupError, train

    if options.get("init_from"):  # absolute, so a later `kneeoa convert` from elsewhere finds the earlier stage
        options["init_from"] = str(Path(options["init_from"]).resolve())
    try:
        cfg = TrainConfig.from_sources(config_file, train_dir=str(train_dir), val_dir=str(val_dir), out_dir=out_dir, **options)
    except (ValueError, TypeError) as e:
        raise click.UsageError(str(e)) from None
    try:
        path = train(cfg)
    except (FileNotFoundError, FileExistsError, TrainSetupError, KneeOAError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(path)


@main.command("convert")
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Model directory to write (manifest.json and artifacts).")
@click.option("--formats", default="onnx-fp32,onnx-int8,tflite-int8", show_default=True, help=f"Comma-separated, or 'all': {', '.join(FORMAT_NAMES)}.")
@click.option("--calibration", "calibration_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder of real images (class sub-folders) for int8 calibration.")
@click.option("--calibration-size", type=click.IntRange(min=1), default=500, show_default=True, help="Images drawn, class-balanced and shuffled.")
@click.option("--verify", "verify_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Labelled folder to check every format against Keras [default: the calibration folder].")
@click.option("--verify-size", type=click.IntRange(min=1), default=200, show_default=True, help="Images drawn from --verify for the parity check.")
@click.option("--default-format", help="Format edge-infer uses by default [default: first int8 ONNX written].")
@click.option("--name", help="Model name in the manifest [default: the run's folder name].")
@click.option("--ship", help="Comma-separated formats to keep in --out [default: all that pass]; the others are measured, recorded as dropped, and removed.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.97, show_default=True, help="Reject a format whose top-1 agreement with Keras is lower.")
@click.option("--min-gradcam-r", type=click.FloatRange(-1, 1), default=0.9, show_default=True, help="Reject a format whose Grad-CAM correlates less with Keras's.")
@click.option("--notes", "notes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Markdown file recorded in the manifest and shown in the model card (what was tried, known gaps).")
def convert_cmd(model_path: Path, out_dir: Path, formats: str, notes_file: Path | None, **options) -> None:
    """Convert MODEL_PATH (.keras from `kneeoa train`) to edge formats with a manifest."""
    names = list(FORMAT_NAMES) if formats.strip() == "all" else [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown or not names:
        raise click.BadParameter(f"unknown format(s) {unknown}; choose from {', '.join(FORMAT_NAMES)} or 'all'", param_hint="--formats")
    ship = None
    if options["ship"]:
        ship = tuple(f.strip() for f in options["ship"].split(",") if f.strip())
        if not set(ship) <= set(names):
            raise click.BadParameter(f"{sorted(set(ship) - set(names))} not among --formats", param_hint="--ship")
    options["ship"] = ship
    kept = ship or names
    if options["default_format"] and options["default_format"] not in kept:
        raise click.BadParameter(f"{options['default_format']!r} is not among the formats shipped", param_hint="--default-format")
    _quiet_tensorflow()
    from convert.pipeline import ConvertOptions, convert_model

    opts = ConvertOptions(formats=tuple(names), command=shlex.join(["kneeoa", *sys.argv[1:]]),
                          notes=notes_file.read_text() if notes_file else None, **options)
    try:
        manifest_path = convert_model(model_path, out_dir, opts)
    except (FileNotFoundError, ValueError, KneeOAError) as e:  # ParityFloorError is a ValueError
        raise click.ClickException(str(e)) from None
    click.echo(manifest_path)


@main.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Model directory with manifest.json [default: the shipped model].")
@click.option("--format", "format_name", type=click.Choice(FORMAT_NAMES), help="Model format [default: the manifest's].")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Write evaluation.json, predictions.csv, confusion_matrix.png and roc.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (without per-image predictions) instead of the table.")
def evaluate_cmd(data_dir: Path, model_dir, format_name, threads, out_dir, as_json) -> None:
    """Score DATA_DIR (one sub-folder per class: 0..4 for KL grades) on the edge runtime, as shipped.

    Unreadable images are reported on stderr and listed under "failed"; the exit status is then 1.
    """
    from .evaluate import evaluate, report, write_outputs

    from edge_infer.progress import Progress

    progress = Progress("evaluate")

    def on_result(done: int, total: int, path: Path, error: str | None) -> None:
        if error:
            progress.note(f"error: {error}")
        progress(done, total)

    try:
        result = evaluate(data_dir, model_dir, format_name, threads, on_result=on_result)
    except (FileNotFoundError, ValueError, KneeOAError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        progress.close()
    if out_dir:
        for path in write_outputs(result, out_dir):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=1))
    else:
        click.echo(report(result))
    sys.exit(1 if result["failed"] else 0)


@main.command("bench")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Model directory with manifest.json [default: the shipped model].")
@click.option("--formats", help="Comma-separated formats [default: every format in the model directory, registry order].")
@click.option("--threads", default=None, help="Comma-separated thread counts, e.g. 1,2,4 [default: 1 and all cores].")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Labelled folder (class sub-folders): accuracy per format, agreement with float32, and real images for timing.")
@click.option("--keras", "keras_model", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Add the float32 Keras model in TensorFlow as the reference row (needs the train extra).")
@click.option("--min-time", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Seconds of timed calls per measurement.")
@click.option("--min-runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed calls at least.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the full report here as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a latency-vs-size PNG here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as Markdown here (e.g. benchmarks/RESULTS.md).")
def bench_cmd(model_dir, formats, threads, data_dir, keras_model, min_time, min_runs, warmup, json_path, plot_path, markdown_path) -> None:
    """Size, load time, latency (median/p90/p99), end-to-end throughput, peak memory and accuracy of
    every format, each measured in a fresh process on this machine."""
    from benchmarks.bench import markdown, plot, run_bench, table
    from edge_infer.classifier import default_model_dir

    try:
        thread_counts = [int(t) for t in threads.split(",")] if threads else None
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {threads!r}", param_hint="--threads") from None
    names = [f.strip() for f in formats.split(",") if f.strip()] if formats else None
    unknown = [n for n in names or [] if n not in FORMAT_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown format(s) {unknown}; choose from {', '.join(FORMAT_NAMES)}", param_hint="--formats")
    try:
        report = run_bench(model_dir or default_model_dir(), names, thread_counts, data_dir, keras_model, min_time,
                           min_runs, warmup, progress=lambda msg: click.echo(msg, err=True))
    except (FileNotFoundError, ValueError, KneeOAError) as e:
        raise click.ClickException(str(e)) from None
    if json_path:
        json_path.write_text(json.dumps(report, indent=1) + "\n")
        click.echo(f"wrote {json_path}", err=True)
    click.echo(table(report))
    if markdown_path:
        markdown_path.write_text(markdown(report, shlex.join(["kneeoa", *sys.argv[1:]])))
        click.echo(f"wrote {markdown_path}", err=True)
    if plot_path:
        click.echo(f"wrote {plot(report, plot_path)}", err=True)
    if any("error" in r for r in report["rows"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
