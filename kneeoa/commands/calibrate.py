"""``kneeoa calibrate``: fit (or refit) the calibration and Refer band of a model directory, on
the edge runtime (``kneeoa convert`` does this itself when given ``--verify``)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_infer.errors import KneeOAError


@click.command("calibrate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Validation knees (class sub-folders), never the training images.")  # fmt: skip
@click.option("--refer-sensitivity", "sensitivity", type=click.FloatRange(0.5, 0.999), default=0.90,
              show_default=True, help="Sensitivity the knees called outside the Refer band must reach.")  # fmt: skip
@click.option("--refer-specificity", "specificity", type=click.FloatRange(0.5, 0.999), default=0.90,
              show_default=True, help="Specificity they must reach.")  # fmt: skip
def calibrate_cmd(model_dir: Path, val_dir: Path, sensitivity: float, specificity: float) -> None:
    """Fit temperature scaling and the Refer band of every format in MODEL_DIR, record them in its manifest."""
    from kneeoa_convert.uncertainty import calibrate_model

    try:
        blocks = calibrate_model(model_dir, val_dir, sensitivity, specificity)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    for fmt, b in blocks.items():
        band = "none reaches the targets: every knee referred" if not b["reached"] else (
            f"Refer for {b['refer_band'][0]:.3f} <= P(OA) < {b['refer_band'][1]:.3f}: {b['referral_rate']:.1%} referred, "
            f"called sensitivity {b['called_sensitivity']:.3f}, specificity {b['called_specificity']:.3f}")  # fmt: skip
        click.echo(f"{fmt}: temperature {b['temperature']:.3f}, ECE {b['ece_before']:.3f} -> {b['ece_after']:.3f} "
                   f"(n={b['n']}); {band}")  # fmt: skip
