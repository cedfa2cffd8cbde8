"""The class/label map: folder names → classes, KL grades and the screening grouping.

Folders named ``0``..``4`` are Kellgren–Lawrence grades: the classes become ``KL0``..``KL4`` and
KL ≥ 2 forms the "Osteoarthritis" screening group. Any other folder names are plain classes,
used as they are; a class called ``Osteoarthritis`` or ``OA`` (any case) is then the positive group.
"""

from __future__ import annotations

KL_OA_MIN_GRADE = 2
NEGATIVE_LABEL = "Normal"
POSITIVE_LABEL = "Osteoarthritis"


def is_kl_folders(folder_names: list[str]) -> bool:
    """True when every folder name is a KL grade 0..4 (all five present)."""
    return sorted(folder_names) == ["0", "1", "2", "3", "4"]


def classes_from_folders(folder_names: list[str]) -> tuple[list[str], list[int] | None]:
    """Class names in output order, and the KL grade of each class (``None`` for plain classes)."""
    names = sorted(folder_names)
    if is_kl_folders(names):
        return [f"KL{n}" for n in names], [int(n) for n in names]
    return names, None


def positive_indices(classes: list[str], screening: dict | None) -> list[int] | None:
    """Indices of the screening-positive classes, or ``None`` when there is no screening grouping."""
    if not screening:
        return None
    return [classes.index(c) for c in screening["positive_classes"]]


def screening_for(classes: list[str], kl_grades: list[int] | None, threshold: float = 0.5) -> dict | None:
    """The manifest's screening block: which classes are positive, and the decision threshold."""
    if kl_grades is not None:
        positive = [c for c, g in zip(classes, kl_grades) if g >= KL_OA_MIN_GRADE]
        rule = f"KL >= {KL_OA_MIN_GRADE}"
    else:
        positive = [c for c in classes if c.lower() in ("osteoarthritis", "oa")]
        rule = "class named Osteoarthritis/OA"
        if not positive:
            return None
    return {
        "negative_label": NEGATIVE_LABEL,
        "positive_label": POSITIVE_LABEL,
        "positive_classes": positive,
        "rule": rule,
        "threshold": threshold,
    }
