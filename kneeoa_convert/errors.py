"""Conversion's branch of the project's error tree (:mod:`edge_infer.errors`)."""

from __future__ import annotations

from edge_infer.errors import KneeOAError


class ConvertError(KneeOAError):
    """A conversion cannot run as asked: no calibration images, a source model that
    ``kneeoa train`` did not write, classes that differ from the model's."""


class ParityFloorError(ConvertError):
    """One or more formats fell below the parity floors; the rest were written."""
