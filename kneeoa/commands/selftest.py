"""``kneeoa selftest``: record the self-test of a converted model directory in its manifest."""

from __future__ import annotations

from pathlib import Path

import click

from edge_infer.errors import KneeOAError


@click.command("selftest")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def selftest_cmd(model_dir: Path) -> None:
    """Record MODEL_DIR's self-test: a generated input per format and the answer it gives now.

    kneeoa convert does this itself. Run it on a model converted before self-tests existed, or
    after a deliberate edit of its manifest (the device refuses an edit it was not told of).
    Rewrites manifest.json only; no TensorFlow, no retraining.
    """
    from kneeoa_convert.selftest import record_self_test

    try:
        block, changed = record_self_test(model_dir, command=f"kneeoa selftest {model_dir}")
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"contract sections recorded anew: {', '.join(changed) or 'none (unchanged)'}")
    for fmt, e in block["formats"].items():
        probs = " ".join(f"{c} {p:.3f}" for c, p in e["probabilities"].items())
        oa = "" if e["oa_probability"] is None else f", P(OA) {e['oa_probability']:.3f}"
        click.echo(f"{fmt}: seed {e['input']['seed']}: {probs}; top {e['top_class']}{oa}, {e['label']}")
