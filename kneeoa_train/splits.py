"""Patient-level splits: every image carries a patient (or group) id, and a split never puts one id
in two subsets, so both knees of a patient and all their visits land in train, val or test together.

The id comes from a file-name pattern (a regular expression whose first group, or group ``id``, is
the id; the default reads kneeKL224/OAI names: ``9003175L.png`` → ``9003175``) or from a CSV of
``file,group`` rows. No TensorFlow here: ``kneeoa prepare`` uses it before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_infer.errors import ConfigError, DatasetError

DEFAULT_ID_PATTERN = r"^(\d+)"
"""kneeKL224 / OAI style: the leading digits of the file name (``9003175L`` → ``9003175``)."""
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


class GroupIds:
    """Maps an image file to its patient/group id.

    Args:
        pattern: Regular expression searched in the file name (without folders); group ``id`` if it
            has one, else group 1, else the whole match.
        csv_file: A CSV with a header holding ``file`` and ``group`` columns. ``file`` is the path
            relative to the dataset folder, or the bare file name. Overrides ``pattern``.

    Raises:
        ConfigError: an invalid pattern, or a CSV that cannot be read or lacks the columns.
    """

    def __init__(self, pattern: str = DEFAULT_ID_PATTERN, csv_file: str | Path | None = None):
        self.csv_file = Path(csv_file) if csv_file else None
        self.pattern = pattern
        self._table = _read_id_csv(self.csv_file) if self.csv_file else None
        try:
            self._regex = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"--id-pattern {pattern!r}: not a valid regular expression ({e})") from None

    def describe(self) -> dict:
        """What the manifest records about where ids came from."""
        if self.csv_file:
            return {"source": "csv", "file": str(self.csv_file)}
        return {"source": "file-name pattern", "pattern": self.pattern}

    def group_of(self, path: Path, root: Path) -> str | None:
        """The id of ``path`` (a file under ``root``), or ``None`` when the pattern or CSV has none."""
        if self._table is not None:
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
            return self._table.get(rel) or self._table.get(path.name)
        match = self._regex.search(path.stem)
        if not match:
            return None
        if "id" in self._regex.groupindex:
            return match.group("id")
        return match.group(1) if self._regex.groups else match.group(0)


def _read_id_csv(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: cannot read the id CSV ({e})") from None
    if not rows or not {"file", "group"} <= set(rows[0]):
        raise ConfigError(f"{path}: an id CSV needs a header with 'file' and 'group' columns")
    table: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        name, group = (row["file"] or "").strip(), (row["group"] or "").strip()
        if not name or not group:
            raise ConfigError(f"{path}: line {n} lacks a file or a group")
        if table.get(name, group) != group:
            raise ConfigError(f"{path}: {name} is given two groups ({table[name]} and {group})")
        table[name] = group
    return table


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` → train/val/test fractions (they must be ≥ 0 and sum to 1; test may be 0).

    Raises:
        ConfigError: not three numbers, a negative one, no train or val, or a sum other than 1.
    """
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--split {text!r}: expected three fractions such as 0.8,0.1,0.1") from None
    if len(parts) != 3 or min(parts) < 0 or parts[0] == 0 or parts[1] == 0 or abs(sum(parts) - 1) > 1e-6:
        raise ConfigError(f"--split {text!r}: expected train,val,test fractions ≥ 0 summing to 1, train and val > 0")
    return parts  # type: ignore[return-value]


@dataclass(frozen=True)
class SplitPlan:
    """Which split each image goes to. ``assignment[i]`` names the split of image ``i``."""

    assignment: list[str]

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.assignment))


def group_key(group: str, seed: int) -> int:
    """A patient id as a 64-bit key: the first 8 bytes of ``sha256(f"{seed}:{group}")``.

    Sorting keys gives a stable pseudo-random order of ids: the same id lands in the same split
    whatever else is in the dataset and in whatever order the files were listed. A dataset needs
    8 bytes per image while it is scanned and 9 per patient after (instead of the id strings);
    two ids sharing a key (odds about n²/2⁶⁵) would only share a split, never leak.
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class SplitTable:
    """The split of every patient, compactly: ``keys`` (sorted ``uint64`` :func:`group_key`) and
    ``codes`` (index into :data:`SPLIT_NAMES`) side by side."""

    keys: np.ndarray
    codes: np.ndarray

    def code_of(self, key: int) -> int:
        """The split code of ``key``, or ``-1`` for a patient the table does not hold."""
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        return int(self.codes[i]) if i < len(self.keys) and int(self.keys[i]) == key else -1

    def index_of(self, key: int) -> int:
        return int(np.searchsorted(self.keys, np.uint64(key)))

    def groups(self) -> dict[str, int]:
        """Patients per split."""
        return {s: int(n) for s, n in zip(SPLIT_NAMES, np.bincount(self.codes, minlength=3), strict=True) if n}


def table_by_size(image_keys: np.ndarray, fractions=DEFAULT_FRACTIONS) -> SplitTable:
    """Assign whole patients to train/val/test so image counts come close to ``fractions``.

    Patients are taken in key order (seeded hash order), and each goes to the split that is
    furthest below its share of the images so far, so a big patient never pushes a split far past
    its target. Memory: the keys of the images (8 bytes each), then 9 bytes per patient.
    """
    keys, sizes = np.unique(np.asarray(image_keys, np.uint64), return_counts=True)
    total = int(sizes.sum())
    filled = np.zeros(3)
    target = np.asarray(fractions, np.float64)
    open_splits = [i for i in range(3) if target[i] > 0]
    codes = np.empty(len(keys), np.uint8)
    for i, size in enumerate(sizes.tolist()):
        split = min(open_splits, key=lambda s: (filled[s] / total - target[s], s))
        codes[i] = split
        filled[split] += size
    return SplitTable(keys, codes)


def table_as_given(image_keys: np.ndarray, image_codes: np.ndarray) -> tuple[SplitTable, np.ndarray]:
    """The table of a split the user made (folders), and the keys found in more than one split.

    Returns:
        ``(table, leaking_keys)``; the table is only meaningful when ``leaking_keys`` is empty.
    """
    order = np.lexsort((np.asarray(image_codes), np.asarray(image_keys, np.uint64)))
    keys, codes = np.asarray(image_keys, np.uint64)[order], np.asarray(image_codes, np.uint8)[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    mixed = np.r_[False, (keys[1:] == keys[:-1]) & (codes[1:] != codes[:-1])]
    return SplitTable(keys[first], codes[first]), np.unique(keys[mixed])


def split_by_group(groups: list[str], fractions=DEFAULT_FRACTIONS, seed: int = 0) -> SplitPlan:
    """:func:`table_by_size` for a list of ids (one per image); ``assignment[i]`` is image ``i``'s split."""
    keys = [group_key(g, seed) for g in groups]
    table = table_by_size(np.asarray(keys, np.uint64), fractions)
    plan = SplitPlan([SPLIT_NAMES[table.code_of(k)] for k in keys])
    check_no_leak(groups, plan.assignment)
    return plan


def leak_message(leaks: dict[str, set[str]], count: int) -> str:
    """The refusal of a split in which ``count`` ids appear in more than one subset (``leaks``: some of them)."""
    shown = ", ".join(f"{g} in {'+'.join(sorted(leaks[g]))}" for g in sorted(leaks)[:3])
    return (
        f"the split leaks: {count} patient/group id(s) appear in more than one subset ({shown}"
        f"{', ...' if count > 3 else ''}); split by patient, or fix --id-pattern / --ids-csv"
    )


def check_no_leak(groups: Iterable[str], splits: Iterable[str]) -> None:
    """Refuse a split in which one group id appears in two subsets.

    Raises:
        DatasetError: naming the first leaking ids and the subsets they appear in.
    """
    seen: dict[str, set[str]] = {}
    for group, split in zip(groups, splits, strict=True):
        seen.setdefault(group, set()).add(split)
    leaks = {g: s for g, s in seen.items() if len(s) > 1}
    if leaks:
        raise DatasetError(leak_message(leaks, len(leaks)))
