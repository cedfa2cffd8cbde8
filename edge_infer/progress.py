"""Progress on stderr for long batches: ``done/total`` redrawn in place on a terminal, a line every
10% otherwise (logs); error lines are printed whole, never overwritten. Nothing goes to stdout, so
``--json`` output stays clean."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Call with ``(done, total)`` after each item; ``note(line)`` prints a line above the counter.

    Args:
        what: Word shown before the counter.
        min_total: Batches shorter than this show no counter (errors still print).
        enabled: ``False`` hides the counter.
        stream: Where to write (default ``sys.stderr``).
    """

    def __init__(self, what: str, min_total: int = 20, enabled: bool = True, stream: TextIO | None = None):
        self.what = what
        self.min_total = min_total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False
        self._tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < self.min_total:
            return
        if self.tty:
            self.stream.write(f"\r{self.what} {done}/{total}")
            self._drawn = True
        elif done * 10 // total != self._tenth:
            self._tenth = done * 10 // total
            self.stream.write(f"{self.what} {done}/{total}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the counter (before other output reaches the same terminal)."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def note(self, line: str) -> None:
        self.clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.flush()
