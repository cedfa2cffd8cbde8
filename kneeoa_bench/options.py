"""The benchmark's command-line options, shared by ``kneeoa bench`` (the workstation) and
``python -m kneeoa_bench`` (a device with only the runtime install)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click


def measurement_options(f: Callable) -> Callable:
    """``--threads``, ``--data``, ``--min-time``, ``--min-runs`` and ``--warmup``."""
    options = [
        click.option("--threads", help="Comma-separated thread counts, e.g. 1,2,4 [default: 1 and all cores]."),
        click.option(
            "--data",
            "data_dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="Labelled folder (class sub-folders): accuracy per format, agreement with float32, and "
            "real images for timing.",
        ),
        click.option(
            "--min-time",
            type=click.FloatRange(min=0.1),
            default=2.0,
            show_default=True,
            help="Seconds of timed calls per measurement.",
        ),
        click.option(
            "--min-runs", type=click.IntRange(min=1), default=20, show_default=True, help="Timed calls at least."
        ),
        click.option(
            "--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def thread_counts(threads: str | None) -> list[int] | None:
    """``--threads`` as integers (``None``: the default).

    Raises:
        click.BadParameter: not comma-separated integers.
    """
    try:
        return [int(t) for t in threads.split(",")] if threads else None
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {threads!r}", param_hint="--threads"
        ) from None
