"""The project's one tree of errors, rooted here on the ground floor.

Every message names the file it is about and the problem, so a CLI prints it as one line without
a traceback. The CLIs catch :class:`KneeOAError` and nothing wider: any other exception is a bug
and keeps its traceback. The workstation packages add their own branches
(``kneeoa_train.errors.TrainSetupError``, ``kneeoa_convert.errors.ConvertError``, …).

::

    KneeOAError
    ├── InputImageError          an input file is not a usable knee image
    ├── ManifestError            a model directory, manifest or artifact is missing or inconsistent
    │   └── ModelContractError   a model file's inputs/outputs differ from its manifest
    ├── OutputError              a result could not be written (a full disk, a closed pipe)
    ├── InputRefusedError        the input gate refused to grade an image (not a knee crop like the training ones)
    ├── RuntimeUnavailableError  the engine a format needs is not installed
    ├── DatasetError             a labelled folder cannot be used (missing, no classes, wrong classes)
    ├── ConfigError              an option or config-file value is invalid (also a ValueError)
    ├── TrainSetupError          (kneeoa_train) a run cannot start as configured
    ├── ConvertError             (kneeoa_convert) a conversion cannot run or its result fails a check
    │   └── ParityFloorError
    └── KitError                 (kneeoa_kit) a screening kit cannot be built as asked
"""

from __future__ import annotations

from pathlib import Path


class KneeOAError(Exception):
    """Base class of the project's own errors."""


def readable_name(name: str | Path) -> str:
    """A file name as text every output can encode: bytes that were not UTF-8 (which Python
    decodes to lone surrogates) become ``\\xNN``."""
    name = str(name)
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class InputImageError(KneeOAError):
    """An input file could not be read as a knee image."""

    def __init__(self, path: str | Path, problem: str):
        self.path = readable_name(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputRefusedError(KneeOAError):
    """The input gate refused to grade an image: it is not a single-knee PA crop like those the
    model was trained on. ``verdict`` holds the check that refused it and the scores."""

    def __init__(self, path: str | Path, reason: str, verdict=None):
        self.path = readable_name(path)
        self.reason = reason
        self.verdict = verdict
        super().__init__(f"{self.path}: refused: {reason}")


class OutputError(KneeOAError):
    """A result could not be written where it was asked for (``--output``, standard output)."""


class ManifestError(KneeOAError):
    """A model directory, its manifest or one of its artifacts is missing or inconsistent."""


class ModelContractError(ManifestError):
    """A model file's real inputs or outputs differ from what its manifest promises."""


class RuntimeUnavailableError(KneeOAError):
    """The inference engine a format needs is not installed."""


class DatasetError(KneeOAError):
    """A labelled folder (one sub-folder per class) is missing, empty, or holds other classes."""


class ConfigError(KneeOAError, ValueError):
    """An option or config-file value is invalid; the message names the file when there is one."""


def failure_message(source: str | Path, error: BaseException) -> str:
    """One line for an input that failed: the project's own errors as they are (they name the
    file), anything else as unexpected, with the input named."""
    message = str(error) if isinstance(error, KneeOAError) else f"{source}: unexpected {type(error).__name__}: {error}"
    return " ".join(message.split())
