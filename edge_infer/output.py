"""What ``edge-infer`` writes, made safe to read.

- ``--output FILE``: every result appended as it comes, as JSON Lines (``.jsonl``) or CSV
  (``.csv``), one complete record at a time: a record that cannot be written in full (a full disk)
  is cut back off, so the file always ends with a whole record, and the failure is an
  :class:`~edge_infer.errors.OutputError`.
- File names as data: bytes that are not UTF-8 become ``\\xNN`` (:func:`edge_infer.errors.readable_name`); on a
  terminal, control and format characters (escape sequences, newlines, bidirectional overrides)
  are shown escaped (:func:`terminal_safe`), so a name cannot hide or fake a result; in CSV, text
  cells that a spreadsheet would run as a formula are prefixed with ``'`` (:func:`csv_safe`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import unicodedata
from pathlib import Path

from .errors import OutputError

OUTPUT_SUFFIXES = (".jsonl", ".csv")

CSV_COLUMNS_BEFORE = ("input", "error", "refused", "kl_grade", "label", "oa_probability")
CSV_COLUMNS_AFTER = ("heatmap", "notes", "gate", "heatmap_error")
"""CSV columns around the per-class ``p_<class>`` probabilities."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def terminal_safe(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``, ``\\n``, ``\\u202e``), for a terminal."""
    return "".join(c.encode("unicode_escape").decode("ascii") if _hidden(c) else c for c in text)


def _hidden(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")


def csv_safe(value: str) -> str:
    """A text cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``, tab or CR
    gets a ``'`` before it (OWASP's advice against CSV formula injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class ResultFile:
    """An open results file; :meth:`write` takes the records ``edge-infer --json`` prints.

    Args:
        path: Destination; its ending picks the format. An existing file is replaced.
        classes: Class names, for the CSV probability columns.

    Raises:
        ValueError: an unsupported ending.
        OSError: the file cannot be created.
        OutputError: the CSV header cannot be written.
    """

    def __init__(self, path: Path, classes: list[str]):
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"{path}: --output must end in {', '.join(OUTPUT_SUFFIXES)}")
        self.path = path
        self.classes = list(classes)
        self.records = 0
        self._csv = suffix == ".csv"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        self._end = 0
        if self._csv:
            try:
                self._append(self._row([*CSV_COLUMNS_BEFORE, *(f"p_{c}" for c in self.classes), *CSV_COLUMNS_AFTER]))
            except OutputError:
                self.close()
                raise

    def write(self, record: dict) -> None:
        """Append one record, whole or not at all.

        Raises:
            OutputError: it could not be written (the file is left ending with the previous record).
        """
        self._append(self._csv_line(record) if self._csv else json.dumps(record) + "\n")
        self.records += 1

    def _append(self, text: str) -> None:
        encoded = text.encode("utf-8", "backslashreplace")
        data = memoryview(encoded)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise OutputError(f"{self.path}: cannot write results ({e.strerror or e}); it holds the "
                              f"{self.records} complete records before this one") from None  # fmt: skip
        self._end += len(encoded)

    def _csv_line(self, record: dict) -> str:
        probs = record.get("probabilities") or {}
        text = [record["input"], record.get("error", ""), record.get("refused", "")]
        row = [*(csv_safe(t or "") for t in text), _cell(record.get("kl_grade")), csv_safe(record.get("label") or ""),
               _cell(record.get("oa_probability")), *(_cell(probs.get(c)) for c in self.classes),
               *(csv_safe(t) for t in (record.get("heatmap") or "", "; ".join(record.get("notes") or []),
                                        record.get("gate") or "", record.get("heatmap_error") or ""))]  # fmt: skip
        return self._row(row)

    @staticmethod
    def _row(cells: list) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(cells)
        return buffer.getvalue()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _cell(value) -> str:
    return "" if value is None else str(value)
