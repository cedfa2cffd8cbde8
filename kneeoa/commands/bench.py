"""``kneeoa bench``: measure every format of a model on this machine."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError

from .common import model_option, parse_formats, write_or_fail


@click.command("bench")
@model_option
@click.option(
    "--formats", help="Comma-separated formats [default: every format in the model directory, registry order]."
)
@click.option("--threads", default=None, help="Comma-separated thread counts, e.g. 1,2,4 [default: 1 and all cores].")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Labelled folder (class sub-folders): accuracy per format, agreement with float32, and real images for timing.",
)
@click.option(
    "--keras",
    "keras_model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Add the float32 Keras model in TensorFlow as the reference row (needs the train extra).",
)
@click.option(
    "--min-time",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds of timed calls per measurement.",
)
@click.option("--min-runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed calls at least.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the full report here as JSON."
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a latency-vs-size PNG here."
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the results as Markdown here (e.g. benchmarks/RESULTS.md).",
)
def bench_cmd(
    model_dir, formats, threads, data_dir, keras_model, min_time, min_runs, warmup, json_path, plot_path, markdown_path
) -> None:
    """Size, load time, latency (median/p90/p99), end-to-end throughput, peak memory and accuracy of
    every format, each measured in a fresh process on this machine."""
    from edge_infer.classifier import default_model_dir
    from kneeoa_bench.bench import run_bench
    from kneeoa_bench.report import markdown, plot, table

    try:
        thread_counts = [int(t) for t in threads.split(",")] if threads else None
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {threads!r}", param_hint="--threads"
        ) from None
    names = parse_formats(formats)
    try:
        report = run_bench(
            model_dir or default_model_dir(),
            names,
            thread_counts,
            data_dir,
            keras_model,
            min_time,
            min_runs,
            warmup,
            progress=lambda msg: click.echo(msg, err=True),
        )
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    if json_path:
        write_or_fail(json_path, lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    click.echo(table(report))
    if markdown_path:
        write_or_fail(markdown_path, lambda p: p.write_text(markdown(report, shlex.join(["kneeoa", *sys.argv[1:]]))))
    if plot_path:
        write_or_fail(plot_path, lambda p: plot(report, p))
    if any("error" in r for r in report["rows"]):
        sys.exit(1)
