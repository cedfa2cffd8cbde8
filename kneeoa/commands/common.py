"""What several subcommands share."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off the terminal (set before it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
