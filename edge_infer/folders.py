"""Labelled folder datasets (one sub-folder per class): discovery, class-balanced draws and loading.

No TensorFlow: training, conversion, evaluation and the benchmarks all scan data through this
module, and images go through :mod:`edge_infer.preprocess`, the same code the device runs.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError, InputImageError
from .finding import IMAGE_SUFFIXES, image_files
from .labels import classes_from_folders
from .preprocess import PreprocessSpec, prepare_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderDataset:
    """Image files of a class-per-folder tree.

    Attributes:
        root: The folder scanned.
        folders: Sub-folder names in class order.
        classes: Class names in output order (``KL0``.. for KL folders).
        kl_grades: KL grade per class, or ``None`` for plain classes.
        paths: Image files.
        labels: Class index of each file.
    """

    root: Path
    folders: list[str]
    classes: list[str]
    kl_grades: list[int] | None
    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()


def scan_class_folders(root: str | Path, folders: list[str] | None = None) -> FolderDataset:
    """List the images under ``root/<class>/`` (recursively within each class folder).

    Args:
        root: Dataset folder.
        folders: Expected class folders, in class order (e.g. the training set's, when scanning
            validation data); by default every sub-folder, sorted.

    Raises:
        DatasetError: when ``root`` or an expected class folder is missing, or no image is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders = sorted(folders) if folders is not None else found
    missing = [f for f in folders if f not in found]
    if not missing and len(folders) == 1:
        raise DatasetError(f"{root}: one class folder ({folders[0]}); a classifier needs at least two")
    if missing or not folders:
        raise DatasetError(f"{root}: expected class sub-folders {folders or '(any)'}, found {found}")
    classes, kl = classes_from_folders(folders)
    paths, labels = [], []
    for idx, name in enumerate(folders):
        files = image_files(root / name)
        paths += files
        labels += [idx] * len(files)
    if not paths:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return FolderDataset(root, folders, classes, kl, paths, np.asarray(labels, np.int64))


def balanced_order(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices that take classes in turn (shuffled within and across classes), up to ``n``.

    The first ``k`` indices are as class-balanced as the data allows for every ``k``, and the result
    is shuffled, so a calibration or smoke subset can be neither ordered nor one-class.
    """
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    picked: list[int] = []
    while any(pools) and (n is None or len(picked) < n):
        for pool in pools:
            if pool and (n is None or len(picked) < n):
                picked.append(pool.pop())
    return rng.permutation(np.asarray(picked, np.int64))


def load_images(paths: list[Path], spec: PreprocessSpec | int, workers: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Load and prepare images as ``(n, size, size)`` ``uint8``; unreadable files are skipped.

    Args:
        paths: Image files.
        spec: The preprocessing contract (intensity, then padding and size); a plain size
            skips the intensity step.

    Returns:
        The images and the indices (into ``paths``) that loaded.
    """

    def one(p: Path) -> np.ndarray | None:
        try:
            return prepare_file(p, spec)[0]
        except InputImageError as e:
            log.warning("skipped %s", e)
            return None

    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(one, paths))
    ok = np.asarray([i for i, im in enumerate(images) if im is not None], np.int64)
    size = spec.size if isinstance(spec, PreprocessSpec) else spec
    stack = np.stack([images[i] for i in ok]) if len(ok) else np.zeros((0, size, size), np.uint8)
    return stack, ok
