"""``kneeoa bench``: measure every format of a model on this machine."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError
from kneeoa_bench.options import measurement_options, thread_counts

from .common import model_option, parse_formats, write_or_fail


@click.command("bench")
@model_option
@click.option(
    "--formats", help="Comma-separated formats [default: every format in the model directory, registry order]."
)
@click.option(
    "--keras",
    "keras_model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Add the float32 Keras model in TensorFlow as the reference row (needs the train extra).",
)
@measurement_options
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

    names = parse_formats(formats)
    try:
        report = run_bench(
            model_dir or default_model_dir(),
            names,
            thread_counts(threads),
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
