"""``kneeoa``: the workstation command. Thin: each subcommand parses options, calls library
functions and reports; its module (``kneeoa.commands.<name>``) is imported only when it runs, so
``kneeoa evaluate`` and ``kneeoa bench`` never load training code or TensorFlow."""

from __future__ import annotations

import importlib
import logging
import sys

import click

SUBCOMMANDS = {
    "prepare": "kneeoa.commands.prepare:prepare_cmd",
    "train": "kneeoa.commands.train:train_cmd",
    "convert": "kneeoa.commands.convert:convert_cmd",
    "evaluate": "kneeoa.commands.evaluate:evaluate_cmd",
    "bench": "kneeoa.commands.bench:bench_cmd",
    "gate": "kneeoa.commands.gate:gate_cmd",
    "calibrate": "kneeoa.commands.calibrate:calibrate_cmd",
    "app": "kneeoa.commands.app:app_cmd",
    "kit": "kneeoa.commands.kit:kit_cmd",
    "selftest": "kneeoa.commands.selftest:selftest_cmd",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (Click's "lazily loading
    subcommands" pattern)."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy_subcommands[cmd_name].partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Knee-OA screening on a workstation: train, convert, evaluate and benchmark models, build offline kits; serve the screening page."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    main()
