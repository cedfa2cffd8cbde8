"""The class/label map: folder names → classes, KL grades and the screening grouping.

Folders named ``0``..``4`` are Kellgren–Lawrence grades: the classes become ``KL0``..``KL4`` and
KL ≥ 2 forms the "Osteoarthritis" screening group (:class:`edge_infer.screening.Screening`). Any other folder names are plain classes,
used as they are; a class called ``Osteoarthritis`` or ``OA`` (any case) is then the positive group.
"""

from __future__ import annotations

KL_OA_MIN_GRADE = 2
NEGATIVE_LABEL = "Normal"
POSITIVE_LABEL = "Osteoarthritis"
REFER_LABEL = "Refer"
"""The screening result for a knee near the decision boundary (:mod:`edge_infer.calibration`)."""


def is_kl_folders(folder_names: list[str]) -> bool:
    """True when every folder name is a KL grade 0..4 (all five present)."""
    return sorted(folder_names) == ["0", "1", "2", "3", "4"]


def classes_from_folders(folder_names: list[str]) -> tuple[list[str], list[int] | None]:
    """Class names in output order, and the KL grade of each class (``None`` for plain classes)."""
    names = sorted(folder_names)
    if is_kl_folders(names):
        return [f"KL{n}" for n in names], [int(n) for n in names]
    return names, None
