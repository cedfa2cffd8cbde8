"""The kit builder's branch of the project's error tree."""

from __future__ import annotations

from edge_infer.errors import KneeOAError


class KitError(KneeOAError):
    """A kit cannot be built as asked, or a kit is not intact; the message names the file or option."""
