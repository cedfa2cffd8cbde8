"""``kneeoa app``: serve the screening page (Streamlit) on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_infer.errors import KneeOAError
from kneeoa.commands.common import model_option


@click.command("app")
@model_option
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="TCP port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 127.0.0.1 keeps the page on this machine, 0.0.0.0 opens it to the network.")  # fmt: skip
def app_cmd(model_dir: Path | None, port: int, host: str) -> None:
    """Serve the screening page: upload knee X-rays, read the grade, the screening result and the
    Grad-CAM heatmap. Needs the app extra: pip install "kneeoa[app]". Stop it with Ctrl-C."""
    from kneeoa_app.launch import serve

    click.echo(f"kneeoa app: starting the screening page on http://{host}:{port} (Ctrl-C stops it)", err=True)
    try:
        code = serve(model_dir, port=port, host=host)
    except KneeOAError as e:
        raise click.ClickException(str(e)) from None
    sys.exit(code)
