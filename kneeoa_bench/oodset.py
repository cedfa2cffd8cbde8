"""An out-of-distribution test set: what reaches a knee screening tool by mistake.

``python -m kneeoa_bench.oodset OUT --knees DIR`` writes one sub-folder per category:

- ``blank``: uniform grey, black, white; ``gradient``: linear and radial ramps;
  ``noise``: uniform and Gaussian noise, a checkerboard;
- ``dicom_other``: the CT, MR, ultrasound, nuclear-medicine and secondary-capture images that
  pydicom ships as test files (with the ``dicom`` extra);
- ``photo``: scikit-image's sample photographs (when scikit-image is installed);
- real knees (from ``--knees``, e.g. the validation split) as they arrive wrong: ``inverted``,
  ``rotated`` (90° and 270°), ``upside_down``, ``small_in_field`` (a knee in an 896 px black
  field, as on an uncropped film), ``side_by_side`` (two knees, as on a bilateral PA film).

Nothing here is a knee crop as the model was made for, so every image should be refused. Knees
stored as negatives in the source folder (kneeKL224 holds some) are not used: their inversion is a
proper radiograph (see :func:`stored_as_negative`).
The set is made from what this repository can generate or what packages ship; never from a
dataset split that is held out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from edge_infer.decode import load_grayscale

KNEE_TRANSFORMS = ("inverted", "rotated", "upside_down", "small_in_field", "side_by_side")
SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "moon",
    "horse",
    "coins",
    "page",
    "text",
    "brick",
    "grass",
)


def synthetic_images(size: int = 224, seed: int = 0) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(category, name, uint8 image)`` for images no X-ray looks like."""
    rng = np.random.default_rng(seed)
    for level in (0, 64, 128, 200, 255):
        yield "blank", f"uniform_{level}", np.full((size, size), level, np.uint8)
    ramp = np.linspace(0, 255, size)
    yield "gradient", "horizontal", np.tile(ramp, (size, 1)).astype(np.uint8)
    yield "gradient", "vertical", np.tile(ramp[:, None], (1, size)).astype(np.uint8)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    yield "gradient", "radial", (255 * np.clip(1 - 2 * np.hypot(xx, yy), 0, 1)).astype(np.uint8)
    yield "gradient", "radial_inverse", (255 * np.clip(2 * np.hypot(xx, yy), 0, 1)).astype(np.uint8)
    for i in range(3):
        yield "noise", f"uniform_{i}", rng.integers(0, 256, (size, size), dtype=np.uint8)
        yield "noise", f"gaussian_{i}", np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8)
    cells = (np.add.outer(np.arange(size) // 28, np.arange(size) // 28) % 2) * 255
    yield "noise", "checkerboard", cells.astype(np.uint8)


def stored_as_negative(gray: np.ndarray) -> bool:
    """Whether a knee PA crop is stored as a negative: its central columns (bone) darker than its
    outer ones (soft tissue). On kneeKL224's 826 validation knees this splits with a wide gap: the
    14 stored as negatives score -2.2 to -1.7 (centre minus sides, in standard deviations), all
    others 1.3 to 2.4."""
    g = np.asarray(gray, np.float64)
    w = g.shape[1]
    sides = np.concatenate([g[:, : w // 10].ravel(), g[:, w - w // 10 :].ravel()])
    return bool(g[:, int(0.3 * w) : int(0.7 * w)].mean() < sides.mean())


def source_knees(folder: Path, n: int, seed: int = 7) -> list[Path]:
    """``n`` knees of a labelled folder (class sub-folders), class-balanced, none stored as a negative."""
    from edge_infer.folders import balanced_order, scan_class_folders

    ds = scan_class_folders(folder)
    knees = [ds.paths[i] for i in balanced_order(ds.labels, 2 * n, seed=seed)]
    return [k for k in knees if not stored_as_negative(load_grayscale(k))][:n]


def transformed_knees(knees: list[Path], per_transform: int = 20) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(category, name, image)``: real knee crops turned into the inputs a screening tool
    should refuse."""
    grays = [(p.stem, load_grayscale(p)) for p in knees]
    for i, (stem, g) in enumerate(grays[:per_transform]):
        yield "inverted", stem, 255 - g
        yield "rotated", f"{stem}_{90 if i % 2 else 270}", np.rot90(g, 1 if i % 2 else 3)
        yield "upside_down", stem, g[::-1]
        field = np.zeros((4 * g.shape[0], 4 * g.shape[1]), np.uint8)
        top, left = (field.shape[0] - g.shape[0]) // 2, (field.shape[1] - g.shape[1]) // 2
        field[top : top + g.shape[0], left : left + g.shape[1]] = g
        yield "small_in_field", stem, field
        partner = grays[(i + 1) % len(grays)][1]
        if partner.shape == g.shape:
            yield "side_by_side", stem, np.hstack([g, partner[:, ::-1]])


def photos() -> Iterator[tuple[str, str, np.ndarray]]:
    """scikit-image's bundled sample photographs, as grey (nothing when it is not installed)."""
    try:
        from skimage import data
    except ImportError:
        return
    for name in SKIMAGE_PHOTOS:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # a sample that needs a download (no network here) or is missing
            continue
        if img.dtype == bool:  # a silhouette
            img = img.astype(np.uint8) * 255
        elif img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        if img.ndim == 3:
            img = np.asarray(Image.fromarray(img[..., :3]).convert("L"))
        yield "photo", name, img


def other_modalities() -> Iterator[tuple[str, Path]]:
    """pydicom's bundled test images of other modalities (CT, MR, US, NM, secondary capture);
    only those installed with it: nothing is downloaded."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return
    names = (
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_padded.dcm",
        "US1_J2KR.dcm",
        "examples_ybr_color.dcm",
        "examples_palette.dcm",
        "JPEG2000.dcm",
        "SC_rgb.dcm",
        "SC_rgb_jpeg.dcm",
        "693_J2KI.dcm",
        "emri_small.dcm",
        "liver_1frame.dcm",
        "rtdose_1frame.dcm",
        "OBXXXX1A.dcm",
    )
    for name in names:
        try:
            path = get_testdata_file(name, download=False)
            if path is None:
                continue
            pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        yield "dicom_other", Path(path)


def build(out: Path, knees: list[Path]) -> dict[str, int]:
    """Write the set under ``out/<category>/``; returns the count per category."""
    counts: dict[str, int] = {}
    for category, name, img in [*synthetic_images(), *photos(), *transformed_knees(knees)]:
        folder = out / category
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{name}.png")
        counts[category] = counts.get(category, 0) + 1
    for category, path in other_modalities():
        folder = out / category
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
        counts[category] = counts.get(category, 0) + 1
    (out / "ood_set.json").write_text(
        json.dumps({"counts": counts, "knees_from": sorted({str(k.parent.parent) for k in knees})}, indent=1) + "\n"
    )
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--knees", type=Path, required=True, help="a labelled folder (class sub-folders) of real knee crops"
    )
    parser.add_argument("--per-transform", type=int, default=20)
    args = parser.parse_args(argv)
    counts = build(args.out, source_knees(args.knees, args.per_transform + 1))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
