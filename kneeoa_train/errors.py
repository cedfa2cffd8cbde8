"""Training's branch of the project's error tree (:mod:`edge_infer.errors`)."""

from __future__ import annotations

from edge_infer.errors import KneeOAError


class TrainSetupError(KneeOAError):
    """The run cannot start as configured: a loss the classes do not support, an ``--init-from``
    model of another architecture or not found, a missing weights file, a run directory that holds
    another run. Reported as one line, unlike errors from inside training."""
