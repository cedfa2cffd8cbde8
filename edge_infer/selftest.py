"""The self-test a model carries in its manifest: a known input, and the answer each format gave
it at conversion, checked every time a :class:`~edge_infer.classifier.Classifier` loads.

The schema catches a manifest that is malformed or inconsistent; this catches one that is
well-formed but no longer what was converted. ``self_test`` holds:

- ``contract``: the sha256 of each manifest section that decides an answer (:data:`CONTRACT`:
  classes, grades, screening rule and threshold, preprocessing, output names, Grad-CAM head, input
  gate), as written at conversion. A section edited since, even to a valid value (a threshold of
  0.6), is named and refused.
- ``formats``: per format, the artifact's sha256 it was recorded for, the input (a seed: the image
  is generated, :func:`self_test_image`, and its sha256 recorded so a generator that drifted is
  told apart from a model that did) and the answer: each class's probability, the top class, its
  KL grade, P(OA) and the screening label. At load, the input goes through the same
  preprocessing and engine as any knee; a probability more than ``tolerance`` away from the
  recorded one, or another grade or label where the recorded answer was clear of the boundary by
  more than ``tolerance``, is refused.

``tolerance`` (:data:`TOLERANCE`, 0.02) allows for engines that round differently on another CPU:
onnxruntime picks CPU-specific fused int8 kernels at full graph optimisation, and an onnx-int8
knee's probabilities differed by up to 0.013 between this AMX Xeon and an emulated Pi 4
(cortex-a72; identical with basic optimisation, which ran 3.3× slower here); tflite-dynamic agreed
to 6 decimals; full-int8 softmax moves in steps of 1/256. Any mix-up of two classes whose recorded probabilities differ by more than
twice that is caught, and ``kneeoa convert`` picks, from :data:`SEEDS` seeds, the input whose
class probabilities lie furthest apart.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import TYPE_CHECKING

import numpy as np

from .calibration import calibration_of
from .errors import ModelContractError
from .preprocess import prepare_gray, to_model_input
from .runtimes import device_probabilities

if TYPE_CHECKING:
    from .manifest import Manifest
    from .runtimes import Runtime

GENERATOR = "sha256-smooth-v1"
GRID = 6
"""Control points a side of the generated image: coarse enough that the image has structure at
the scale the network sees (a 12×12 grid gave flatter answers on the shipped model)."""
TOLERANCE = 0.02
SEEDS = 64
CONTRACT = ("classes", "kl_grades", "screening", "preprocess", "outputs", "gradcam_head", "gate")
"""The manifest sections whose content decides an answer."""
METHOD = (
    "a seeded, generated image (sha256 of '<generator>:<seed>:<i>' as control points in grey levels 48-207, bilinearly "
    "interpolated in integers) run through the device's preprocessing and engine; its answer must "
    "match the recorded one within the tolerance, and each contract section its recorded sha256"
)


def self_test_image(size: int, seed: int, grid: int = GRID) -> np.ndarray:
    """The ``(size, size)`` ``uint8`` self-test image for ``seed``: the same bytes on every machine.

    ``grid × grid`` control points (grey levels 48–207) come from SHA-256 (no random generator
    whose stream could change between numpy versions) and are interpolated bilinearly in integer arithmetic (no
    floating-point rounding that could differ between CPUs)."""
    n = grid * grid
    raw = b"".join(hashlib.sha256(f"{GENERATOR}:{seed}:{i}".encode()).digest() for i in range((n + 31) // 32))
    # grey levels 48..207, not 0..255: the percentile stretch (preprocess.intensity) then changes
    # the input a lot, so the recorded answer depends on it
    points = 48 + (np.frombuffer(raw[:n], np.uint8).astype(np.int64).reshape(grid, grid) * 160 >> 8)
    pos = np.arange(size, dtype=np.int64) * (grid - 1) * 1024 // max(size - 1, 1)
    i0, frac = pos >> 10, pos & 1023
    i1 = np.minimum(i0 + 1, grid - 1)
    rows = points[i0] * (1024 - frac)[:, None] + points[i1] * frac[:, None]
    image = rows[:, i0] * (1024 - frac)[None, :] + rows[:, i1] * frac[None, :]
    return ((image + (1 << 19)) >> 20).astype(np.uint8)


def image_sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()


def section_sha256(value) -> str:
    """sha256 of a manifest section in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def contract_digests(data: dict) -> dict[str, str]:
    """:data:`CONTRACT` section → sha256, of a manifest's parsed JSON (absent sections as ``null``)."""
    return {name: section_sha256(data.get(name)) for name in CONTRACT}


def answer(manifest: Manifest, runtime: Runtime, image: np.ndarray, fmt: str) -> dict:
    """What the device answers for ``image`` in format ``fmt``, as the self-test records it: each
    class's probability (calibrated, as reported), the top class, its KL grade, P(OA) and the
    screening label, ``Refer`` included (the gate aside)."""
    spec = manifest.preprocess
    out = runtime.run(to_model_input(prepare_gray(image, spec)[0], spec))
    calibration = calibration_of(manifest, fmt)
    probs = calibration.apply(device_probabilities(out["probabilities"][0]))
    top = int(probs.argmax())
    result = {
        "probabilities": {c: float(p) for c, p in zip(manifest.classes, probs, strict=True)},
        "top_class": manifest.classes[top],
        "kl_grade": manifest.kl_grades[top] if manifest.kl_grades is not None else None,
        "oa_probability": None,
        "label": manifest.classes[top],
    }
    if manifest.screening is not None:
        result["oa_probability"] = float(manifest.screening.score(probs))
        result["label"] = calibration.label(manifest.screening, result["oa_probability"])
    return result


def calibration_sha256(manifest: Manifest, fmt: str) -> str:
    """sha256 of format ``fmt``'s ``calibration`` block (``null`` when it has none)."""
    return section_sha256(manifest.artifacts[fmt].info.get("calibration"))


def boundaries(manifest: Manifest, fmt: str) -> tuple[float, ...]:
    """The P(OA) values where format ``fmt``'s screening label changes: the threshold and the
    edges of its refer band."""
    if manifest.screening is None:
        return ()
    band = calibration_of(manifest, fmt).refer_band or ()
    return (manifest.screening.threshold, *band)


def separation(result: dict, threshold: float | tuple[float, ...] | None) -> float:
    """How clearly an answer tells its classes apart: the smallest gap between two class
    probabilities, and between P(OA) and the threshold. A self-test input with a larger one
    catches more (two classes swapped, a label flipped)."""
    p = sorted(result["probabilities"].values())
    gaps = [b - a for a, b in itertools.pairwise(p)]
    edges = () if threshold is None else (threshold,) if isinstance(threshold, (int, float)) else threshold
    if result["oa_probability"] is not None:
        gaps += [abs(result["oa_probability"] - t) for t in edges]
    return min(gaps)


def record(manifest: Manifest, runtime: Runtime, fmt: str, seeds: int = SEEDS) -> dict:
    """The self-test entry of format ``fmt``: of ``seeds`` generated inputs, the one whose answer
    is best separated (:func:`separation`), with that answer and the digests of the artifact and
    of its calibration."""
    size = manifest.preprocess.size
    threshold = boundaries(manifest, fmt)
    best = None
    for seed in range(seeds):
        result = answer(manifest, runtime, self_test_image(size, seed), fmt)
        score = separation(result, threshold)
        if best is None or score > best[0]:
            best = (score, seed, result)
    _, seed, result = best
    image = self_test_image(size, seed)
    entry = {"artifact_sha256": manifest.artifacts[fmt].sha256, "calibration_sha256": calibration_sha256(manifest, fmt),
             "input": {"seed": seed, "size": size, "grid": GRID, "sha256": image_sha256(image)}}  # fmt: skip
    return entry | {k: _rounded(v) for k, v in result.items()}


def _rounded(v):
    if isinstance(v, dict):
        return {k: round(x, 7) for k, x in v.items()}
    return round(v, 7) if isinstance(v, float) else v


def verify(manifest: Manifest, fmt: str, runtime: Runtime) -> bool:
    """Run the manifest's self-test of ``fmt`` on ``runtime``.

    Returns:
        ``False`` when the manifest has no self-test (converted before self-tests existed; the
        caller warns), ``True`` when it passed.

    Raises:
        ModelContractError: the manifest was edited since the self-test was recorded, the
            artifact is not the one it was recorded for, or the answer differs beyond the tolerance.
    """
    block = manifest.data.get("self_test")
    if block is None:
        return False
    where = f"{manifest.model_dir / 'manifest.json'}: self_test"
    fix = "the manifest was edited after conversion; restore it, or re-record with `kneeoa selftest`"
    current = contract_digests(manifest.data)
    for name, digest in block["contract"].items():
        if name in current and current[name] != digest:
            raise ModelContractError(f"{where}: {name} differs from the one the self-test was recorded with; {fix}")
    entry = block["formats"].get(fmt)
    if entry is None:
        raise ModelContractError(f"{where}: no self-test for {fmt} (recorded for {', '.join(block['formats'])})")
    if entry["artifact_sha256"] != manifest.artifacts[fmt].sha256:
        raise ModelContractError(f"{where}: {fmt}'s self-test was recorded for another file "
                                 f"(sha256 {entry['artifact_sha256'][:12]}…); {fix}")  # fmt: skip
    if entry.get("calibration_sha256", section_sha256(None)) != calibration_sha256(manifest, fmt):
        raise ModelContractError(f"{where}: {fmt}'s calibration differs from the one the self-test was recorded "
                                 f"with; {fix}")  # fmt: skip
    spec = entry["input"]
    if spec["size"] != manifest.preprocess.size:
        raise ModelContractError(
            f"{where}: {fmt}'s input is {spec['size']} px, the model takes {manifest.preprocess.size}"
        )
    image = self_test_image(spec["size"], spec["seed"], spec["grid"])
    if image_sha256(image) != spec["sha256"]:
        raise ModelContractError(f"{where}: the self-test image of seed {spec['seed']} comes out differently here "
                                 "(sha256 differs): this edge_infer generates it otherwise")  # fmt: skip
    threshold = boundaries(manifest, fmt)
    _compare(entry, answer(manifest, runtime, image, fmt), block["tolerance"], threshold, f"{where}: {fmt}")
    return True


def _compare(expected: dict, got: dict, tol: float, threshold: tuple[float, ...], where: str) -> None:
    """Refuse when ``got`` is not ``expected`` within ``tol``: each probability and P(OA) within
    ``tol``; the same top class and grade where the recorded top class led by more than ``tol``;
    the same label where the recorded P(OA) was more than ``tol`` from every label boundary
    (the threshold, the refer band's edges)."""
    exp_p, got_p = expected["probabilities"], got["probabilities"]
    if list(exp_p) != list(got_p):
        raise ModelContractError(f"{where}: recorded for classes {list(exp_p)}, the manifest now has {list(got_p)}")
    worst = max(exp_p, key=lambda c: abs(exp_p[c] - got_p[c]))
    if abs(exp_p[worst] - got_p[worst]) > tol:
        raise ModelContractError(
            f"{where}: the self-test input gives P({worst}) {got_p[worst]:.4f}, recorded {exp_p[worst]:.4f} "
            f"(tolerance {tol}); the model, the manifest or the engine changes the answer"
        )
    exp_oa, got_oa = expected["oa_probability"], got["oa_probability"]
    if (exp_oa is None) != (got_oa is None) or (exp_oa is not None and abs(exp_oa - got_oa) > tol):
        raise ModelContractError(f"{where}: P(OA) {got_oa} for the self-test input, recorded {exp_oa}")
    p = sorted(exp_p.values())
    top_clear = p[-1] - p[-2] > tol
    label_clear = top_clear if exp_oa is None or not threshold else min(abs(exp_oa - t) for t in threshold) > tol
    for key, clear in (("top_class", top_clear), ("kl_grade", top_clear), ("label", label_clear)):
        if clear and got[key] != expected[key]:
            raise ModelContractError(f"{where}: {key} {got[key]!r} for the self-test input, recorded {expected[key]!r}")
