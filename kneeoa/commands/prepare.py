"""``kneeoa prepare``: parse the options, convert a dataset to shards (:mod:`kneeoa_train.prepare`), report."""

from __future__ import annotations

from pathlib import Path

import click

from edge_infer.errors import ConfigError, KneeOAError
from edge_infer.preprocess import INTENSITY_MODES
from edge_infer.progress import Progress

from .common import quiet_tensorflow, require_training_stack


class _Report:
    """Progress on stderr (``prepared done/total``) and one line per refused file."""

    def __init__(self):
        self.progress = Progress("prepared")
        self.done = self.total = 0
        self.refused = 0

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, n: int) -> None:
        self.done += n
        self.progress(self.done, self.total)

    def note(self, line: str) -> None:
        self.refused += 1
        self.progress.note(f"refused {line}")


@click.command("prepare")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Shard folder.")
@click.option(
    "--size",
    type=click.IntRange(min=75),
    default=75,
    show_default=True,
    help="Side of the stored images; train with the same --input-size.",
)
@click.option(
    "--intensity",
    type=click.Choice(INTENSITY_MODES),
    default="percentile",
    show_default=True,
    help="Preprocessing intensity contract.",
)
@click.option(
    "--id-pattern",
    default=None,
    help=r"Regex for the patient/group id in a file name (group 1 or group 'id') [default: ^(\d+), 9003175L -> 9003175].",
)
@click.option(
    "--ids-csv",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with 'file' and 'group' columns; overrides --id-pattern.",
)
@click.option(
    "--split",
    "split_text",
    default=None,
    help="train,val,test fractions when DATA_DIR is one folder, split by patient [default: 0.8,0.1,0.1].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--shard-size", type=click.IntRange(min=1), default=2048, show_default=True, help="Images per shard file."
)
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Decoding threads.")
@click.option("--verify", "verify_only", is_flag=True, help="Only re-hash the shards in --out against shards.json.")
def prepare_cmd(data_dir: Path, out_dir: Path, split_text, id_pattern, verify_only, **options) -> None:
    """Convert DATA_DIR (class folders, or train/ val/ [test/] of class folders) into sharded
    TFRecords for `kneeoa train`, through the device's own preprocessing, split by patient."""
    require_training_stack()
    quiet_tensorflow()
    from kneeoa_train.prepare import PrepareOptions, prepare, verify
    from kneeoa_train.splits import DEFAULT_ID_PATTERN, parse_fractions

    if verify_only:
        problems = verify(out_dir)
        for line in problems:
            click.echo(line, err=True)
        if problems:
            raise SystemExit(1)
        click.echo(f"{out_dir}: every shard matches its sha256")
        return
    try:
        fractions = parse_fractions(split_text) if split_text else PrepareOptions().fractions
        opts = PrepareOptions(fractions=fractions, id_pattern=id_pattern or DEFAULT_ID_PATTERN, **options)
    except KneeOAError as e:
        raise click.UsageError(str(e)) from None
    report = _Report()
    try:
        manifest = prepare(data_dir, out_dir, opts, report)
    except ConfigError as e:  # a bad --id-pattern or --ids-csv
        raise click.UsageError(str(e)) from None
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    finally:
        report.progress.close()
    for name, split in manifest["splits"].items():
        click.echo(
            f"{name}: {split['images']} images, {split['groups']} patients, per class {split['counts']}, {len(split['shards'])} shard(s)"
        )
    click.echo(
        f"{out_dir}: {manifest['written']} of {manifest['found']} images written, {len(manifest['refused'])} refused"
    )
    if manifest["refused"]:
        raise SystemExit(1)
