"""Exception types raised by the edge runtime.

Every message names the file it is about and the problem, so the CLI can print it
as one line without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class KneeOAError(Exception):
    """Base class of the project's own errors."""


class InputImageError(KneeOAError):
    """An input file could not be read as a knee image."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ManifestError(KneeOAError):
    """A model directory, its manifest or one of its artifacts is missing or inconsistent."""


class ModelContractError(ManifestError):
    """A model file's real inputs or outputs differ from what its manifest promises."""


class RuntimeUnavailableError(KneeOAError):
    """The inference engine a format needs is not installed."""


def failure_message(source: str | Path, error: BaseException) -> str:
    """One line for an input that failed: the project's own errors as they are (they name the
    file), anything else as unexpected, with the input named."""
    message = str(error) if isinstance(error, KneeOAError) else f"{source}: unexpected {type(error).__name__}: {error}"
    return " ".join(message.split())
