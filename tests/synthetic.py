"""Synthetic knee-radiograph-like images, so the suite needs no downloaded data.

Each image shows a femur above and a tibia below (bright, rounded condyles on a dark background),
separated by a joint space that narrows as the KL grade rises, with marginal osteophytes from
grade 2 and sclerosis (a brighter subchondral band) from grade 3. Not anatomy: just enough
structure for a real model to learn something and for preprocessing to be exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_knee(grade: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """A ``(size, size)`` ``uint8`` knee-like image for KL ``grade`` (0–4)."""
    rng = np.random.default_rng(seed * 7919 + grade)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx = 0.5 + rng.uniform(-0.04, 0.04)
    cy = 0.5 + rng.uniform(-0.03, 0.03)
    gap = (0.11 - 0.022 * grade) * rng.uniform(0.9, 1.1)
    width = 0.34 + rng.uniform(-0.03, 0.03)
    # Femur: a shaft plus two condyles whose lower edge sits at cy - gap/2.
    condyles = (
        np.minimum(
            ((xx - (cx - width / 2)) / (width / 2)) ** 2 + ((yy - (cy - gap / 2 - 0.12)) / 0.12) ** 2,
            ((xx - (cx + width / 2)) / (width / 2)) ** 2 + ((yy - (cy - gap / 2 - 0.12)) / 0.12) ** 2,
        )
        <= 1.0
    )
    femur = condyles | ((np.abs(xx - cx) < 0.2) & (yy < cy - gap / 2 - 0.1))
    tibia = (np.abs(xx - cx) < width * 0.95) & (yy > cy + gap / 2) & (yy < cy + gap / 2 + 0.15)
    tibia |= (np.abs(xx - cx) < 0.18) & (yy > cy + gap / 2)
    img = 0.12 + 0.55 * femur + 0.5 * tibia
    if grade >= 2:  # osteophytes at the joint margins
        for side in (-1, 1):
            r = 0.015 * grade
            spur = ((xx - (cx + side * width * 0.97)) ** 2 + (yy - (cy + gap / 2)) ** 2) < r**2
            img = np.where(spur, 0.7, img)
    if grade >= 3:  # subchondral sclerosis
        band = tibia & (yy < cy + gap / 2 + 0.025)
        img = np.where(band, 0.95, img)
    img = img + rng.normal(0, 0.03, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_knee_dataset(root: Path, per_class: int, size: int = 128, seed: int = 0, grades=range(5)) -> Path:
    """Write ``root/<grade>/knee_<i>.png`` for each grade; returns ``root``."""
    for g in grades:
        folder = root / str(g)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(synthetic_knee(g, size, seed=seed * 1000 + i)).save(folder / f"knee_{i}.png")
    return root


def write_patients(root: Path, patients: int, size: int = 80, visits: int = 1, first: int = 9000000) -> Path:
    """kneeKL224-style names: ``<patient><L|R>[_<visit>].png``, both knees in (possibly) different grades."""
    for p in range(patients):
        for side in "LR":
            for v in range(visits):
                grade = (p + (side == "R") + v) % 5
                folder = root / str(grade)
                folder.mkdir(parents=True, exist_ok=True)
                suffix = f"_{v}" if visits > 1 else ""
                Image.fromarray(synthetic_knee(grade, size, seed=p * 10 + v)).save(
                    folder / f"{first + p}{side}{suffix}.png"
                )
    return root
