"""``python -m kneeoa_bench``: the benchmark on a device that has only the runtime install (what a
screening kit's ``bench.sh`` runs). The same measurements as ``kneeoa bench``, without the
workstation command; writes ``bench.json`` and ``bench.md`` into ``--out``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError

from .options import measurement_options, thread_counts


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for bench.json and bench.md."
)
@click.option("--formats", help="Comma-separated formats [default: every format in the model directory].")
@measurement_options
def main(model_dir, out, formats, threads, data_dir, min_time, min_runs, warmup) -> None:
    """Latency, memory and cold start of every format of a model, each in a fresh process."""
    from .bench import run_bench
    from .report import markdown, table

    names = [f.strip() for f in formats.split(",")] if formats else None
    counts = thread_counts(threads)
    try:
        report = run_bench(model_dir, names, counts, data_dir, None, min_time, min_runs, warmup,
                           progress=lambda msg: click.echo(msg, err=True))  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / "bench.md").write_text(markdown(report, shlex.join(["python", "-m", "kneeoa_bench", *sys.argv[1:]])))
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{out}: cannot write ({e.strerror or e})") from None
    click.echo(table(report))
    if any("error" in r for r in report["rows"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
