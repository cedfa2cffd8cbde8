"""``kneeoa train``: parse the options, build a :class:`~kneeoa_train.config.TrainConfig`, train."""

from __future__ import annotations

from pathlib import Path

import click

from edge_infer.errors import ConfigError, KneeOAError
from kneeoa_train.config import (
    CLASS_WEIGHT_MODES,
    HEAD_LAYERS,
    INTENSITIES,
    LOSSES,
    PRECISIONS,
    SELECT_METRICS,
    STRATEGIES,
)

from .common import quiet_tensorflow, require_training_stack


@click.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--val",
    "val_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Validation folder [default: DATA_DIR/val when DATA_DIR has train/ and val/].",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory (outside the repository); rerun with the same --out to resume.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON file of defaults; flags override it.",
)
@click.option("--weights", help="imagenet, none (from scratch) or a backbone weights file [default: none].")
@click.option("--input-size", type=click.IntRange(min=75), help="Square input side, ≥ 75 [default: 75].")
@click.option(
    "--head-layer", type=click.Choice(HEAD_LAYERS), help="InceptionV3 block the head sits on [default: mixed5]."
)
@click.option(
    "--hidden-units", type=click.IntRange(min=0), help="Dense+ReLU width in the head, 0 for none [default: 0]."
)
@click.option("--dropout", type=float, help="[default: 0.3]")
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 20]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 32]")
@click.option("--learning-rate", type=float, help="Peak Adam learning rate, cosine decay [default: 1e-3].")
@click.option("--label-smoothing", type=float, help="[default: 0]")
@click.option(
    "--loss",
    type=click.Choice(LOSSES),
    help="crossentropy, or sord (soft ordinal labels for KL grades) [default: crossentropy].",
)
@click.option("--sord-alpha", type=float, help="SORD target sharpness: mass ∝ exp(-alpha·Δgrade²) [default: 2].")
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False),
    help="Start from a trained .keras model of the same architecture (any input size).",
)
@click.option("--jit/--no-jit", "jit_compile", default=None, help="XLA-compile the training step [default: off].")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="auto: bfloat16 mixed precision on CPUs with AMX, float32 elsewhere [default: auto].",
)
@click.option(
    "--intensity",
    type=click.Choice(INTENSITIES),
    help="percentile: stretch each image's 0.5-99.5 percentile range (v2 contract); stored: as decoded [default: percentile].",
)
@click.option("--class-weight", type=click.Choice(CLASS_WEIGHT_MODES), help="[default: sqrt]")
@click.option("--rotation-deg", type=float, help="Augmentation: max rotation [default: 10].")
@click.option("--zoom", type=float, help="Augmentation: zoom fraction [default: 0.15].")
@click.option("--shift", type=float, help="Augmentation: width/height shift fraction [default: 0.08].")
@click.option("--flip/--no-flip", default=None, help="Augmentation: horizontal flip [default: on].")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Cap steps per epoch (smoke runs).")
@click.option(
    "--select-metric",
    type=click.Choice(SELECT_METRICS),
    help="Validation figure that picks the best checkpoint [default: quadratic_weighted_kappa].",
)
@click.option("--seed", type=int, help="[default: 0]")
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    help="one device, mirrored (this machine's GPUs), multi-worker (TF_CONFIG), or auto [default: auto].",
)
@click.option(
    "--shuffle-buffer",
    type=click.IntRange(min=1),
    help="Records in the shuffle buffer when streaming shards [default: 2048].",
)
@click.option(
    "--backup-steps", type=click.IntRange(min=1), help="Save the resume state every N steps [default: each epoch]."
)
@click.option(
    "--swa-epochs",
    type=click.IntRange(min=0),
    help="Average the weights of the last N epochs (SWA), trained at a constant rate [default: 0, none].",
)
@click.option(
    "--swa-learning-rate", type=float, help="Constant learning rate of the averaged epochs [default: half the peak]."
)
def train_cmd(data_dir: Path, val_dir, out_dir, config_file, **options) -> None:
    """Train InceptionV3 on DATA_DIR (one sub-folder per class; 0..4 = KL grades), or on a shard
    folder from `kneeoa prepare` (its train split streamed, its val split validating)."""
    from kneeoa_train.shardset import is_shard_folder

    train_dir = data_dir
    if val_dir is None and is_shard_folder(data_dir):
        val_dir = data_dir
    if val_dir is None:
        if (data_dir / "train").is_dir() and (data_dir / "val").is_dir():
            train_dir, val_dir = data_dir / "train", data_dir / "val"
        else:
            raise click.UsageError("give --val DIR, or a DATA_DIR holding train/ and val/")
    require_training_stack()
    quiet_tensorflow()
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train

    if options.get("init_from"):  # absolute, so a later `kneeoa convert` from elsewhere finds the earlier stage
        options["init_from"] = str(Path(options["init_from"]).resolve())
    try:
        cfg = TrainConfig.from_sources(
            config_file, train_dir=str(train_dir), val_dir=str(val_dir), out_dir=out_dir, **options
        )
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    try:
        path = train(cfg)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    click.echo(path)
