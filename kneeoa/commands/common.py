"""What several subcommands share."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import click

TRAIN_EXTRA = 'pip install "kneeoa[train]"'

model_option = click.option(
    "--model",
    "model_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Model directory with manifest.json [default: the shipped model].",
)
"""``--model DIR``, as every command that runs a converted model takes it."""


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off the terminal (set before it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_training_stack(*modules: str) -> None:
    """Fail with one line naming the extra when TensorFlow (or another workstation package) is
    missing, before anything is imported."""
    missing = [m for m in ("tensorflow", *modules) if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"this command needs {', '.join(missing)}: {TRAIN_EXTRA}")


def write_or_fail(path, write) -> None:
    """``write(path)``; a file that cannot be written is one line and exit 1, not a traceback."""
    try:
        write(path)
    except OSError as e:
        raise click.ClickException(f"{path}: cannot write ({e.strerror or e})") from None
    click.echo(f"wrote {path}", err=True)


def parse_formats(value: str | None, param_hint: str = "--formats", allow_all: bool = False) -> list[str] | None:
    """A comma-separated list of format names (or ``all``), checked against the registry."""
    from edge_infer.formats import FORMAT_NAMES

    if value is None:
        return None
    if allow_all and value.strip() == "all":
        return list(FORMAT_NAMES)
    names = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown or not names:
        choices = ", ".join(FORMAT_NAMES) + (" or 'all'" if allow_all else "")
        raise click.BadParameter(f"unknown format(s) {unknown}; choose from {choices}", param_hint=param_hint)
    return names
