"""``edge-infer --output FILE``: every result appended and flushed as it comes, as JSON Lines
(``.jsonl``) or CSV (``.csv``), so an interrupted batch keeps what it finished."""

from __future__ import annotations

import csv
import json
from pathlib import Path

OUTPUT_SUFFIXES = (".jsonl", ".csv")


class ResultFile:
    """An open results file; :meth:`write` takes the records ``edge-infer --json`` prints.

    Args:
        path: Destination; its ending picks the format. An existing file is replaced.
        classes: Class names, for the CSV probability columns.

    Raises:
        ValueError: an unsupported ending.
        OSError: the file cannot be created.
    """

    def __init__(self, path: Path, classes: list[str]):
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"{path}: --output must end in {', '.join(OUTPUT_SUFFIXES)}")
        self.path = path
        self.classes = classes
        self._f = open(path, "w", newline="" if suffix == ".csv" else None, encoding="utf-8")  # noqa: SIM115 - open for the batch; close()
        self._csv = None
        if suffix == ".csv":
            self._csv = csv.writer(self._f)
            self._csv.writerow(["input", "error", "refused", "kl_grade", "label", "oa_probability",
                                *(f"p_{c}" for c in classes), "heatmap", "notes", "gate"])  # fmt: skip
            self._f.flush()

    def write(self, record: dict) -> None:
        if self._csv is None:
            self._f.write(json.dumps(record) + "\n")
        else:
            probs = record.get("probabilities") or {}
            row = [record["input"], record.get("error", ""), record.get("refused", ""), _cell(record.get("kl_grade")),
                   record.get("label", ""), _cell(record.get("oa_probability")), *(_cell(probs.get(c)) for c in self.classes),
                   record.get("heatmap") or "", "; ".join(record.get("notes") or []), record.get("gate", "")]  # fmt: skip
            self._csv.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _cell(value) -> str:
    return "" if value is None else str(value)
