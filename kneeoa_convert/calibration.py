"""Real images for calibration and verification, drawn class-balanced and shuffled.

Images pass through exactly the inference preprocessing (:mod:`edge_infer.preprocess`). The draw
alternates classes and is then shuffled (:func:`edge_infer.folders.balanced_order`), so a representative set
can be neither ordered nor from one class, however it is truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_infer.folders import balanced_order, load_images, scan_class_folders
from edge_infer.preprocess import PreprocessSpec, to_model_input

from .errors import ConvertError


@dataclass(frozen=True)
class ImageSample:
    """Preprocessed images with their labels and where they came from."""

    x: np.ndarray  # (n, size, size, channels) float32
    labels: np.ndarray  # class index per image (in the folder's class order)
    classes: list[str]
    source: str
    counts: list[int]
    folder_total: int = 0  # images in the folder the sample was drawn from


def draw_sample(folder: str | Path, n: int, spec: PreprocessSpec, seed: int = 0) -> ImageSample:
    """Draw up to ``n`` images from ``folder/<class>/``, class-balanced and shuffled.

    Raises:
        DatasetError: when the folder has no class sub-folders with images.
        ConvertError: when none of the drawn images can be read.
    """
    ds = scan_class_folders(folder)
    order = balanced_order(ds.labels, n, seed=seed)
    images, ok = load_images([ds.paths[i] for i in order], spec)
    if len(ok) == 0:
        raise ConvertError(f"{folder}: none of the {len(order)} drawn images could be read")
    labels = ds.labels[order][ok]
    counts = np.bincount(labels, minlength=len(ds.classes)).tolist()
    return ImageSample(to_model_input(images, spec), labels, ds.classes, str(folder), counts, len(ds))
