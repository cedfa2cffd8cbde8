"""Defaults that command-line options show, kept apart so that listing the commands imports nothing."""

DEFAULT_TARGET = 0.02
"""Share of validation knees the input gate may refuse, negatives stored in the dataset included."""
