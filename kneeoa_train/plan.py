"""The first of ``kneeoa prepare``'s two walks over a dataset: which folders are splits and
classes, how many images each class folder holds, and which split each patient goes to.

Nothing here grows with the dataset but 8 bytes per image while the walk runs (the patient keys,
:func:`kneeoa_train.splits.group_key`) and 9 bytes per patient after it (the
:class:`~kneeoa_train.splits.SplitTable`). The second walk (:mod:`kneeoa_train.prepare`) reads the
same folders again and writes; no list of files is ever held. No TensorFlow here.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_infer.errors import DatasetError, InputImageError

from .splits import SPLIT_NAMES, GroupIds, SplitTable, group_key, leak_message, table_as_given, table_by_size
from .walk import iter_images


@dataclass(frozen=True)
class Item:
    """One image to write: where it is, which split, class and patient it belongs to."""

    path: Path
    rel: str
    split: str
    label: int
    group: str


@dataclass
class DatasetPlan:
    """What the first walk found.

    Attributes:
        data: The dataset folder.
        roots: ``{split: folder}`` for folders the user split (``{"": data}`` when splitting by patient).
        folders: The class folder names (class ``i`` is ``folders[i]``).
        sizes: ``{(root split, class index): images with an id}``, which weights the second walk.
        table: The split of every patient.
        mode: What the manifest records about how the split was made.
        refused: ``{file, problem}`` for each path the walk could not use.
    """

    data: Path
    roots: dict[str, Path]
    folders: list[str]
    sizes: dict[tuple[str, int], int]
    table: SplitTable
    mode: dict
    refused: list[dict]

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def _class_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def dataset_roots(data: Path) -> tuple[dict[str, Path], list[str]]:
    """``DATA/train`` + ``DATA/val`` (+ ``DATA/test``) when both exist, else ``DATA`` itself; and the class folders.

    Raises:
        DatasetError: no dataset, fewer than two classes, or split folders whose classes differ.
    """
    if not data.is_dir():
        raise DatasetError(f"{data}: dataset folder not found")
    given = {s: data / s for s in SPLIT_NAMES if (data / s).is_dir()}
    roots = given if {"train", "val"} <= set(given) else {"": data}
    folders = _class_folders(next(iter(roots.values())))
    if len(folders) < 2:
        raise DatasetError(f"{data}: expected class sub-folders (two or more), found {folders}")
    for root in roots.values():
        if _class_folders(root) != folders:
            raise DatasetError(f"{root}: class folders {_class_folders(root)} differ from {folders}")
    return roots, folders


def labelled_images(
    root: Path, label: int, data: Path, ids: GroupIds, refuse: Callable[[str, str], None] | None
) -> Iterator[tuple[Path, str]]:
    """``(path, patient id)`` of each usable image in one class folder, lazily; ``refuse(file,
    problem)`` hears of every other path (``None``: they are passed over silently)."""
    for entry in iter_images(root):
        if isinstance(entry, InputImageError):
            if refuse:
                refuse(str(entry.path), entry.problem)
            continue
        group = ids.group_of(entry, data)
        if group is None:
            if refuse:
                source = f"not in {ids.csv_file}" if ids.csv_file else f"--id-pattern {ids.pattern!r} does not match"
                refuse(str(entry), f"no patient/group id ({source})")
            continue
        yield entry, group


def plan_dataset(data: Path, ids: GroupIds, fractions, seed: int, note: Callable[[str], None]) -> DatasetPlan:
    """Walk ``data`` once: count images, refuse what cannot be used, split patients.

    Args:
        note: Hears one line per refused path.

    Raises:
        DatasetError: see :func:`dataset_roots`; also no usable image, or a given split that leaks.
    """
    roots, folders = dataset_roots(data)
    refused: list[dict] = []

    def refuse(file: str, problem: str) -> None:
        refused.append({"file": file, "problem": problem})
        note(f"{file}: {problem}")

    keys, codes = array("Q"), array("B")
    sizes: dict[tuple[str, int], int] = {}
    for split, root in roots.items():
        for label, name in enumerate(folders):
            before = len(keys)
            for _, group in labelled_images(root / name, label, data, ids, refuse):
                keys.append(group_key(group, seed))
                codes.append(SPLIT_NAMES.index(split) if split else 0)
            sizes[(split, label)] = len(keys) - before
    if not keys:
        raise DatasetError(f"{data}: no images with a patient/group id in the class folders")
    image_keys = np.frombuffer(keys, np.uint64)
    if "" in roots:
        table = table_by_size(image_keys, fractions)
        mode = {"mode": "by patient/group id", "fractions": list(fractions), "seed": seed}
    else:
        table, leaking = table_as_given(image_keys, np.frombuffer(codes, np.uint8))
        if len(leaking):
            raise DatasetError(leak_message(_leak_names(data, roots, folders, ids, seed, leaking), len(leaking)))
        mode = {"mode": "as given (folders " + ", ".join(roots) + "), checked for shared ids"}
    return DatasetPlan(data, roots, folders, sizes, table, mode, refused)


def _leak_names(data, roots, folders, ids, seed, leaking: np.ndarray) -> dict[str, set[str]]:
    """The ids and subsets of the first three leaking keys (a second walk, on the refusal path only)."""
    wanted = {int(k) for k in np.sort(leaking)[:3]}
    found: dict[str, set[str]] = {}
    for split, root in roots.items():
        for label, name in enumerate(folders):
            for _, group in labelled_images(root / name, label, data, ids, None):
                if group_key(group, seed) in wanted:
                    found.setdefault(group, set()).add(split)
    return found
