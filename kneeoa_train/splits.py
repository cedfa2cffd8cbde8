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


def _rank(group: str, seed: int) -> str:
    """A stable pseudo-random order of ids: the same id lands in the same split whatever else is in
    the dataset and in whatever order the files were listed."""
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def split_by_group(groups: list[str], fractions=DEFAULT_FRACTIONS, seed: int = 0) -> SplitPlan:
    """Assign whole groups to train/val/test so image counts come close to ``fractions``.

    Groups are taken in a seeded hash order, and each goes to the split that is furthest below its
    share of the images so far, so a big patient never pushes a split far past its target.
    """
    sizes = Counter(groups)
    total = len(groups)
    filled = dict.fromkeys(SPLIT_NAMES, 0)
    target = dict(zip(SPLIT_NAMES, fractions, strict=True))
    where: dict[str, str] = {}
    for group in sorted(sizes, key=lambda g: _rank(g, seed)):
        open_splits = [s for s in SPLIT_NAMES if target[s] > 0]
        split = min(open_splits, key=lambda s: (filled[s] / total - target[s], SPLIT_NAMES.index(s)))
        where[group] = split
        filled[split] += sizes[group]
    plan = SplitPlan([where[g] for g in groups])
    check_no_leak(groups, plan.assignment)
    return plan


def check_no_leak(groups: Iterable[str], splits: Iterable[str]) -> None:
    """Refuse a split in which one group id appears in two subsets.

    Raises:
        DatasetError: naming the first leaking ids and the subsets they appear in.
    """
    seen: dict[str, set[str]] = {}
    for group, split in zip(groups, splits, strict=True):
        seen.setdefault(group, set()).add(split)
    leaks = sorted(g for g, s in seen.items() if len(s) > 1)
    if leaks:
        shown = ", ".join(f"{g} in {'+'.join(sorted(seen[g]))}" for g in leaks[:3])
        raise DatasetError(
            f"the split leaks: {len(leaks)} patient/group id(s) appear in more than one subset ({shown}"
            f"{', ...' if len(leaks) > 3 else ''}); split by patient, or fix --id-pattern / --ids-csv"
        )


def groups_per_split(groups: list[str], splits: list[str]) -> dict[str, int]:
    """How many distinct ids each split holds."""
    arr_g, arr_s = np.asarray(groups, dtype=object), np.asarray(splits, dtype=object)
    return {s: len(set(arr_g[arr_s == s])) for s in dict.fromkeys(splits)}
