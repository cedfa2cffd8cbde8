"""``kneeoa kit``: build a portable offline screening kit, and verify one."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError

from .common import model_option, parse_formats


@click.group("kit")
def kit_cmd() -> None:
    """Portable offline screening kits: one folder or zip that installs and runs with no network."""


@kit_cmd.command("build")
@model_option
@click.option("--formats", help="Comma-separated formats to ship [default: every format in the model directory].")
@click.option(
    "--platform",
    "platforms",
    default="host",
    show_default=True,
    help="Comma-separated: linux-aarch64 (Raspberry Pi), linux-x86_64, win-amd64, or host.",
)
@click.option("--python", "pythons", help="Comma-separated Python versions, e.g. 3.11,3.13 [default: this one's].")
@click.option(
    "--dicom/--no-dicom", default=True, show_default=True, help="Carry the DICOM decoders (pydicom, pylibjpeg)."
)
@click.option(
    "--wheelhouse",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Take every wheel from this local folder only (pip --no-index), for a workstation without a package index.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Downloads kept here between builds [default: ~/.cache/kneeoa-kit].",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New kit folder, or a FILE.zip.")
def build_cmd(model_dir, formats, platforms, pythons, dicom, wheelhouse, cache_dir, out) -> None:
    """Build a kit: the runtime wheel and every dependency for each platform and Python, the model,
    verify.py, install/screen/bench scripts (sh and PowerShell), README.txt, kit.json, SHA256SUMS."""
    from edge_infer.classifier import default_model_dir
    from kneeoa_kit.build import KitOptions, build_kit
    from kneeoa_kit.targets import parse_targets

    try:
        targets = parse_targets(platforms, pythons)
    except KneeOAError as e:
        raise click.BadParameter(str(e), param_hint="--platform/--python") from None
    names = parse_formats(formats)
    options = KitOptions(
        model_dir=model_dir or default_model_dir(),
        targets=targets,
        out=out,
        formats=tuple(names) if names else None,
        dicom=dicom,
        wheelhouse=wheelhouse,
        command=shlex.join(["kneeoa", *sys.argv[1:]]),
        **({"cache_dir": cache_dir} if cache_dir else {}),
    )
    try:
        result = build_kit(options, progress=lambda msg: click.echo(msg, err=True))
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"kit: {result.path} ({result.total_bytes / 1e6:.1f} MB in all; formats {', '.join(result.formats)})")
    for key, size in result.target_bytes.items():
        click.echo(f"  {key}: {size / 1e6:.1f} MB of wheels")
    click.echo(f"fingerprint (sha256 of SHA256SUMS): {result.fingerprint}")


@kit_cmd.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--extract", type=click.Path(file_okay=False, path_type=Path), help="For a .zip: unpack it safely here first."
)
@click.option("--this-machine", is_flag=True, help="Also check that the kit has wheels for this machine.")
@click.option(
    "--installed",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also check the files installed in this virtual environment.",
)
def verify_cmd(path, extract, this_machine, installed) -> None:
    """Check a kit as its own verify.py does (every checksum, no extra or missing file, the model
    manifest), then validate the manifest fully with edge_infer. Names each file that is wrong."""
    from kneeoa_kit.check import check_kit

    try:
        kit, problems = check_kit(path, extract, this_machine, installed)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    for line in problems:
        click.echo(f"FAILED: {line}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"OK: {kit}: every file matches SHA256SUMS and the model manifest validates")
